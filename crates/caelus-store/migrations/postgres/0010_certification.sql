-- The last certification report of a template version (JSON: the checklist,
-- each item pass/fail/warn with its reason, and the chart digest certified).
-- Publishing a draft may require a passing one (`--require-certification`).
ALTER TABLE template_versions ADD COLUMN certification TEXT;
