// Runs the browser suite one file at a time and ends with "N passed, N failed".
import { run } from "node:test";
import { spec } from "node:test/reporters";
import { readdirSync } from "node:fs";
import path from "node:path";

const dir = import.meta.dirname;
const files = readdirSync(dir).filter((f) => f.endsWith(".test.mjs")).map((f) => path.join(dir, f));
let passed = 0;
let failed = 0;
const stream = run({ files, concurrency: 1, timeout: 180_000 });
stream.on("test:pass", (t) => { if (t.details?.type !== "suite" && !t.file?.endsWith(t.name)) passed++; });
stream.on("test:fail", (t) => { if (t.details?.type !== "suite" && !t.file?.endsWith(t.name)) failed++; });
stream.compose(spec).pipe(process.stdout);
stream.on("end", () => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
});
