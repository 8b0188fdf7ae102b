// A Drifted deployment's page shows what differs, live vs applied, without reloading.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { Caelus, browser, signIn } from "./harness.mjs";

let caelus;
let admin;

before(async () => {
  caelus = await Caelus.start();
  admin = await browser();
});

after(async () => {
  await admin?.close();
  await caelus?.stop();
});

const kubectl = (...args) =>
  execFileSync("kubectl", ["--kubeconfig", path.join(caelus.dataDir, "kubeconfig"), ...args], { encoding: "utf8" });

test("a hand-scaled Deployment in drift mode warn shows its diff on the page", async () => {
  // The demo chart as a product whose drift is reported, not corrected.
  const web = await caelus.api("GET", "/api/v1/products/web/versions/1.0.0", caelus.admin);
  await caelus.api("POST", "/api/v1/products", caelus.admin, { slug: "watched", name: "Watched web" });
  await caelus.api("POST", "/api/v1/products/watched/versions", caelus.admin, {
    version: "1.0.0",
    chart: web.chart,
    values_allowlist: ["replicaCount"],
    capabilities: { drift_mode: "warn" },
    publish: true,
  });
  const d = await caelus.api("POST", "/api/v1/deployments", caelus.admin, {
    name: "watched shop",
    product: "watched",
    version: "1.0.0",
    values: { replicaCount: 2 },
  });

  const { page } = admin;
  await signIn(page, caelus.base, caelus.admin);
  await page.goto(`${caelus.base}/ui/deployments/${d.uid}`);
  await page.waitForSelector('#summary .badge[data-phase="Ready"]', { timeout: 60_000 });
  assert.equal(await page.locator("#drift-card").count(), 0, "no drift card while in sync");
  await page.evaluate(() => { window.__sameDocument = true; });

  const ready = await caelus.api("GET", `/api/v1/deployments/${d.uid}`, caelus.admin);
  const name = `${ready.release}-web`;
  kubectl("-n", ready.namespace, "patch", "deployment", name, "--type", "merge", "-p", '{"spec":{"replicas":5}}');

  // The watch reports it at once; the page's poll brings the diff.
  const row = page.locator("#drift-table tr", { hasText: "spec.replicas" });
  await row.waitFor({ timeout: 30_000 });
  const cells = await row.locator("td").allInnerTexts();
  assert.deepEqual(cells, [`Deployment/${name}`, "spec.replicas", "5", "2"]);
  assert.match(await page.locator("#drift-card").innerText(), /drift mode warn/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
  // Warn mode: reported, not corrected.
  assert.equal(kubectl("-n", ready.namespace, "get", "deployment", name, "-o", "jsonpath={.spec.replicas}"), "5");

  // Put back by hand: the card goes once the deployment is in sync again.
  kubectl("-n", ready.namespace, "patch", "deployment", name, "--type", "merge", "-p", '{"spec":{"replicas":2}}');
  await page.waitForSelector('#summary .badge[data-phase="Ready"]', { timeout: 30_000 });
  await page.waitForFunction(() => !document.querySelector("#drift-card"), null, { timeout: 30_000 });
});
