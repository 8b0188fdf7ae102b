// The Caelus web UI in headless Chromium against a real `caelus dev`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Caelus, ROOT, browser, signIn } from "./harness.mjs";

// Screenshots go to docs/ with UPDATE_SCREENSHOTS=1, else to a scratch directory.
const SHOTS = process.env.UPDATE_SCREENSHOTS ? path.join(ROOT, "docs") : path.join(ROOT, "target/ui-screenshots");
mkdirSync(SHOTS, { recursive: true });

let caelus;
let admin;
let uid; // the deployment the admin creates, upgrades and deletes

before(async () => {
  caelus = await Caelus.start();
  admin = await browser();
});

after(async () => {
  await admin?.close();
  await caelus?.stop();
});

const phaseOf = (page) => page.locator("#summary .badge[data-phase]").getAttribute("data-phase");

test("sign in, create a deployment from the catalog, watch it reach Ready without reloading", async () => {
  const { page } = admin;
  await signIn(page, caelus.base, caelus.admin);
  assert.match(await page.locator("#whoami").innerText(), /dev-admin/);

  await page.click("nav >> text=Catalog");
  const row = page.locator('section[data-product="web"] tr[data-version="1.0.0"]');
  await row.locator("text=published").waitFor();
  await Promise.all([page.waitForURL(/\/deploy$/), row.locator("a", { hasText: "Deploy" }).click()]);
  await page.fill("#name", "shop front");
  await page.fill("#values", "replicaCount: 2\nconfig:\n  greeting: hello from the browser\n");
  await Promise.all([page.waitForURL(/\/ui\/deployments\/[0-9a-f-]{36}$/), page.click("#deploy-form button[type=submit]")]);
  uid = page.url().split("/").pop();
  assert.match(await page.locator(".flash").innerText(), /created/);

  // Mark this document: a reload would lose the mark.
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.waitForSelector('#summary .badge[data-phase="Ready"]', { timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
  const ready = await page.locator("#ready-objects").innerText();
  assert.match(ready, /^(\d+)\/\1$/, `all objects ready: ${ready}`);
  await page.locator('#events li[data-action="reconcile.deployed"]').first().waitFor();
  await page.locator('#revisions tr[data-revision="1"]').waitFor();
  // The chart's NOTES.txt, rendered for this revision: how to reach it.
  const notes = page.locator("#notes pre");
  await notes.waitFor();
  assert.match(await notes.innerText(), /is running in namespace caelus-[0-9a-f]+\.\nReach it inside the cluster at http:\/\/\S+\.svc:\d+/);
});

test("the catalog filters by search words and lifecycle", async () => {
  const { page } = admin;
  await page.goto(`${caelus.base}/ui/catalog`);
  await page.fill("#catalog-q", "no such product");
  await Promise.all([page.waitForURL(/q=no\+such\+product/), page.click("#catalog-filter button[type=submit]")]);
  await page.locator("#no-match").waitFor();
  assert.equal(await page.locator('section[data-product="web"]').count(), 0);
  await page.fill("#catalog-q", "WEB");
  await page.selectOption("#catalog-lifecycle", "published");
  await Promise.all([page.waitForURL(/lifecycle=published/), page.click("#catalog-filter button[type=submit]")]);
  await page.locator('section[data-product="web"] tr[data-version="1.0.0"]').waitFor();
  await page.goto(`${caelus.base}/ui/catalog?lifecycle=retired`);
  await page.locator("#no-match").waitFor();
});

test("upgrade it with a dry-run preview first, and see the new revision in history", async () => {
  const { page } = admin;
  await page.goto(`${caelus.base}/ui/deployments/${uid}`);
  // Only allowed targets are offered.
  const options = await page.locator("#to_version option").evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, ["2.0.0"]);
  await page.selectOption("#to_version", "2.0.0");
  await Promise.all([page.waitForLoadState("load"), page.click("#preview-upgrade")]);
  const plan = page.locator("#upgrade-plan");
  await plan.waitFor();
  assert.match(await plan.innerText(), /1\.0\.0 → 2\.0\.0/);
  assert.equal(await plan.getAttribute("data-allowed"), "true");
  // The preview changed nothing.
  const before = await caelus.api("GET", `/api/v1/deployments/${uid}`, caelus.admin);
  assert.equal(before.version, "1.0.0");

  await page.selectOption("#to_version", "2.0.0");
  await Promise.all([page.waitForURL(new RegExp(`/ui/deployments/${uid}$`)), page.click("#do-upgrade")]);
  assert.match(await page.locator(".flash").innerText(), /Upgrade to 2\.0\.0 requested/);
  await page.evaluate(() => { window.__sameDocument = true; });
  const rev2 = page.locator('#revisions tr[data-revision="2"]');
  await rev2.waitFor({ timeout: 60_000 });
  await page.waitForFunction(
    () => document.querySelector('#revisions tr[data-revision="2"] .badge')?.textContent === "deployed",
    null,
    { timeout: 60_000 },
  );
  assert.match(await rev2.innerText(), /2\.0\.0/);
  await page.waitForSelector('#summary .badge[data-phase="Ready"]', { timeout: 60_000 });
  assert.match(await page.locator("#summary").innerText(), /web 2\.0\.0/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "history updated without a reload");
  // Revision 1 can be rolled back to.
  await page.locator('#revisions tr[data-revision="1"] button', { hasText: "Roll back to 1" }).waitFor();

  await page.screenshot({ path: path.join(SHOTS, "ui-deployment.png"), fullPage: true });
});

test("a form posted without the CSRF token is refused", async () => {
  const { page } = admin;
  await page.goto(`${caelus.base}/ui/deployments/${uid}`);
  const generation = (await caelus.api("GET", `/api/v1/deployments/${uid}`, caelus.admin)).generation;
  await page.fill("#values", "replicaCount: 5\n");
  await page.evaluate(() => document.querySelector('#values-card input[name="_csrf"]').remove());
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/ui/deployments/${uid}/values`) && r.request().method() === "POST"),
    page.click("#values-card button[type=submit]"),
  ]);
  assert.equal(resp.status(), 403);
  assert.match(await page.locator(".error").innerText(), /CSRF/);
  const after = await caelus.api("GET", `/api/v1/deployments/${uid}`, caelus.admin);
  assert.equal(after.generation, generation, "nothing changed");

  // With the token the same form works, and a value outside the allowlist is named.
  await page.goto(`${caelus.base}/ui/deployments/${uid}`);
  await page.fill("#values", "image:\n  repository: evil\n");
  await Promise.all([page.waitForLoadState("load"), page.click("#values-card button[type=submit]")]);
  assert.match(await page.locator('#values-card .error li[data-field="values"]').innerText(), /image\.repository/);
});

test("delete it, with a confirmation", async () => {
  const { page } = admin;
  await page.goto(`${caelus.base}/ui/deployments/${uid}`);
  await Promise.all([page.waitForURL(/\/delete$/), page.click("text=Delete…")]);
  assert.match(await page.locator("h1").innerText(), /Delete shop front\?/);
  await Promise.all([page.waitForURL(new RegExp(`/ui/deployments/${uid}$`)), page.click("#confirm-delete")]);
  await page.waitForSelector('#summary .badge[data-phase="Deleted"]', { timeout: 60_000 });
  await page.goto(`${caelus.base}/ui/deployments`);
  assert.equal(await page.locator(`tr[data-uid="${uid}"]`).count(), 0);
});

test("a tenant cannot see another tenant's deployment", async () => {
  const acme = await caelus.tenantToken("acme");
  const globex = await caelus.tenantToken("globex");
  const create = (token, name) =>
    caelus.api("POST", "/api/v1/deployments", token, { name, product: "web", version: "1.0.0", values: {} });
  await create(acme, "acme-site");
  await caelus.api("POST", "/api/v1/deployments", acme, { name: "acme-blog", product: "web", version: "2.0.0", values: { replicaCount: 2 } });
  const theirs = await create(globex, "globex-secret-site");

  const b = await browser({ width: 390, height: 844 }); // a phone
  try {
    const { page } = b;
    await signIn(page, caelus.base, acme);
    await page.locator("#deployments").waitFor();
    const table = await page.locator("#deployments").innerText();
    assert.match(table, /acme-site/);
    assert.doesNotMatch(table, /globex-secret-site/);
    const resp = await page.goto(`${caelus.base}/ui/deployments/${theirs.uid}`);
    assert.equal(resp.status(), 404);
    assert.doesNotMatch(await page.content(), /globex-secret-site/);
    // The admin sees both, with their tenants.
    await admin.page.goto(`${caelus.base}/ui/deployments`);
    const all = await admin.page.locator("#deployments").innerText();
    assert.match(all, /acme-site/);
    assert.match(all, /globex-secret-site/);
    await admin.page.waitForFunction(() => document.querySelectorAll('#deployments .badge[data-phase="Ready"]').length >= 3, null, { timeout: 60_000 });
    await admin.page.screenshot({ path: path.join(SHOTS, "ui-deployments.png"), fullPage: true });
  } finally {
    await b.close();
  }
});
