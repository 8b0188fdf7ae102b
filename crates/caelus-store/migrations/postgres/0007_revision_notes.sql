-- The rendered NOTES.txt of a revision's chart (Helm renders it; shown to the owner).
ALTER TABLE revisions ADD COLUMN notes TEXT;
