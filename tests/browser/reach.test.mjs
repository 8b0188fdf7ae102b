// Reaching what you deployed, in the browser against a real `caelus dev`: a
// template with connection details is certified and published from the catalog
// (its checklist shown), then its owner finds the endpoints on the deployment
// page and the generated password masked until Reveal, each reveal audited; no
// other tenant can read it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Caelus, ROOT, browser, signIn } from "./harness.mjs";

const exec = promisify(execFile);
const BIN = process.env.CAELUS_BIN || path.join(ROOT, "target/debug/caelus");
// A chart whose Secret holds a generated password, behind a Service and an Ingress.
const CHART = path.join(ROOT, "testdata/charts/credentials/1.0.0");
const MASK = "••••••••";

let caelus;
let admin; // the admin's browser
let acme; // the owner's token
let uid;
let release;
let namespace;
let password; // as the cluster has it

before(async () => {
  // As `caelus server` runs by default: publishing needs a passing certification.
  caelus = await Caelus.start({ args: ["--require-certification"] });
  admin = await browser();
});

after(async () => {
  await admin?.close();
  await caelus?.stop();
});

/** Every `connection.read` in the global audit log (admin), newest first. */
async function connectionReads() {
  const page = await caelus.api("GET", "/api/v1/events?action=connection.read&limit=500", caelus.admin);
  return page.items;
}

test("a draft with connection details is certified from the catalog, its checklist shown, then published", async () => {
  // The chart into dev's registry (as a user would, with the CLI), the draft through the API.
  const repository = `oci://127.0.0.1:${caelus.registryPort}/charts`;
  const { stdout } = await exec(BIN, ["chart", "push", CHART, repository, "--plain-http", "-o", "json"], { cwd: ROOT });
  const pushed = JSON.parse(stdout);
  assert.equal(pushed.reference, `${repository}/credentials:1.0.0`);
  await caelus.api("POST", "/api/v1/products", caelus.admin, { slug: "app", name: "App with a password" });
  await caelus.api("POST", "/api/v1/products/app/versions", caelus.admin, {
    version: "1.0.0",
    chart: pushed.reference,
    values_allowlist: ["replicaCount", "ingress.*"],
    capabilities: { connection_secrets: [{ secret: "{{release}}-credentials", keys: ["username", "password"] }] },
    publish: false,
  });

  const { page } = admin;
  await signIn(page, caelus.base, caelus.admin);
  await page.goto(`${caelus.base}/ui/catalog`);
  const row = page.locator('section[data-product="app"] tr[data-version="1.0.0"]');
  await row.locator('[data-lifecycle="draft"]').waitFor();
  assert.equal(await row.locator("details.checklist").count(), 0, "no checklist before certification");
  // Certify: checklist, then a canary installed, tested and deleted in caelus dev's cluster.
  await Promise.all([
    page.waitForURL(/\/ui\/catalog$/, { timeout: 150_000 }),
    row.locator("button", { hasText: "Certify" }).click(),
  ]);
  assert.match(await page.locator(".flash").innerText(), /Version 1\.0\.0 of 'app' passed certification/);
  const checklist = row.locator('details.checklist[data-certified="passed"]');
  await checklist.locator("summary").click();
  for (const check of ["resources", "probes", "images.pinned", "values.schema", "canary.install", "canary.tests", "canary.delete"]) {
    const item = checklist.locator(`tr[data-check="${check}"]`);
    assert.equal(await item.getAttribute("data-status"), "pass", `${check}: ${await item.innerText()}`);
  }
  assert.match(await checklist.locator("summary").innerText(), /by token:dev-admin/);

  await Promise.all([page.waitForURL(/\/ui\/catalog$/), row.locator("button", { hasText: "Publish" }).click()]);
  await row.locator('[data-lifecycle="published"]').waitFor();
  // The checklist stays on the published version.
  await row.locator('details.checklist[data-certified="passed"]').waitFor({ state: "attached" });
});

test("a chart that fails certification shows each failed item in the catalog; neither it nor an uncertified one can be published there", async () => {
  const repository = `oci://127.0.0.1:${caelus.registryPort}/charts`;
  const bad = path.join(ROOT, "testdata/charts/uncertified/1.0.0");
  const { stdout } = await exec(BIN, ["chart", "push", bad, repository, "--plain-http", "-o", "json"], { cwd: ROOT });
  await caelus.api("POST", "/api/v1/products", caelus.admin, { slug: "risky", name: "Risky app" });
  await caelus.api("POST", "/api/v1/products/risky/versions", caelus.admin, {
    version: "1.0.0",
    chart: JSON.parse(stdout).reference,
    publish: false,
  });

  const { page } = admin;
  await page.goto(`${caelus.base}/ui/catalog`);
  const row = page.locator('section[data-product="risky"] tr[data-version="1.0.0"]');
  await Promise.all([page.waitForURL(/\/ui\/catalog$/, { timeout: 150_000 }), row.locator("button", { hasText: "Certify" }).click()]);
  const flash = await page.locator(".flash").innerText();
  assert.match(flash, /Version 1\.0\.0 of 'risky' failed certification: /);
  const checklist = row.locator('details.checklist[data-certified="failed"]');
  await checklist.locator("summary").click();
  // An unpinned image, no resources, a privileged container: each named, with its reason.
  for (const check of ["images.pinned", "resources", "policy.pod-security"]) {
    assert.match(flash, new RegExp(check.replace(".", "\\.")));
    const item = checklist.locator(`tr[data-check="${check}"]`);
    assert.equal(await item.getAttribute("data-status"), "fail", `${check}: ${await item.innerText()}`);
    assert.ok((await item.locator("td").nth(2).innerText()).trim().length > 0, `${check} has a reason`);
  }

  // Publishing it from the catalog is refused, naming the failed items; it stays a draft.
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/catalog/risky/1.0.0/publish") && r.request().method() === "POST"),
    row.locator("button", { hasText: "Publish" }).click(),
  ]);
  assert.ok(resp.status() >= 400 && resp.status() < 500, `refused with ${resp.status()}`);
  await page.waitForLoadState("load");
  const refusal = await page.locator(".error").innerText();
  assert.match(refusal, /409.*cannot be published: the certification failed/);
  for (const check of ["images.pinned", "resources", "policy.pod-security"]) assert.ok(refusal.includes(check), refusal);
  const version = await caelus.api("GET", "/api/v1/products/risky/versions/1.0.0", caelus.admin);
  assert.equal(version.lifecycle, "draft");

  // A chart the policy accepts, never certified: the catalog's Publish is refused for that.
  const good = path.join(ROOT, "testdata/charts/certified/1.0.0");
  const pushed = await exec(BIN, ["chart", "push", good, repository, "--plain-http", "-o", "json"], { cwd: ROOT });
  await caelus.api("POST", "/api/v1/products", caelus.admin, { slug: "plain", name: "Never certified" });
  await caelus.api("POST", "/api/v1/products/plain/versions", caelus.admin, {
    version: "1.0.0",
    chart: JSON.parse(pushed.stdout).reference,
    publish: false,
  });
  await page.goto(`${caelus.base}/ui/catalog`);
  const plain = page.locator('section[data-product="plain"] tr[data-version="1.0.0"]');
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/catalog/plain/1.0.0/publish") && r.request().method() === "POST"),
    plain.locator("button", { hasText: "Publish" }).click(),
  ]);
  assert.ok(refused.status() >= 400 && refused.status() < 500, `refused with ${refused.status()}`);
  await page.waitForLoadState("load");
  assert.match(await page.locator(".error").innerText(), /certif/i);
  const still = await caelus.api("GET", "/api/v1/products/plain/versions/1.0.0", caelus.admin);
  assert.equal(still.lifecycle, "draft");
});

test("the owner sees the endpoints, and the connection details masked until Reveal, which is audited", async () => {
  acme = await caelus.tenantToken("acme");
  const created = await caelus.api("POST", "/api/v1/deployments", acme, {
    name: "orders",
    product: "app",
    version: "1.0.0",
    values: { ingress: { host: "orders.example.test", path: "/shop" } },
  });
  uid = created.uid;
  release = created.release;
  namespace = created.namespace;

  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, caelus.base, acme);
    await page.goto(`${caelus.base}/ui/deployments/${uid}`);
    await page.waitForSelector('#summary .badge[data-phase="Ready"]', { timeout: 60_000 });

    // Endpoints, from the live objects: the Service's in-cluster DNS name and port, the Ingress URL.
    const endpoints = page.locator("#endpoints-table");
    await endpoints.locator("tr", { hasText: "Ingress" }).waitFor({ timeout: 30_000 });
    const service = await endpoints.locator("tr", { hasText: "Service" }).innerText();
    assert.match(service, new RegExp(`${release}-app`));
    assert.match(service, /ClusterIP/);
    assert.ok(service.includes(`${release}-app.${namespace}.svc.cluster.local`), service);
    assert.match(service, /80\/TCP/);
    const ingress = endpoints.locator("tr", { hasText: "Ingress" });
    assert.equal(await ingress.locator("a").getAttribute("href"), "http://orders.example.test/shop");

    // The generated password, as the chart stored it in the cluster (read with the real kubectl).
    const { stdout } = await exec("kubectl", [
      "--kubeconfig", path.join(caelus.dataDir, "kubeconfig"),
      "-n", namespace, "get", "secret", `${release}-credentials`, "-o", "jsonpath={.data.password}",
    ]);
    password = Buffer.from(stdout, "base64").toString();
    assert.equal(password.length, 20, "the chart generated it");

    // Masked: the declared keys are named, their values are not on the page.
    const table = page.locator("#connection-table");
    const masked = await table.innerText();
    assert.match(masked, new RegExp(`${release}-credentials\\s+password\\s+${MASK}`));
    assert.match(masked, new RegExp(`${release}-credentials\\s+username\\s+${MASK}`));
    assert.ok(!(await page.content()).includes(password), "the password is not in the page before Reveal");
    assert.equal((await connectionReads()).length, 0, "opening the page reads nothing");

    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/ui/deployments/${uid}/connection`) && r.request().method() === "POST"),
      page.click("#reveal-connection"),
    ]);
    await page.waitForLoadState("load");
    const revealed = page.locator("#connection-table");
    assert.equal(await revealed.locator("tr", { hasText: "password" }).locator("code.secret").innerText(), password);
    assert.equal(await revealed.locator("tr", { hasText: "username" }).locator("code.secret").innerText(), "app");
    assert.match(await page.locator("#connection-card").innerText(), /recorded in the deployment's events/);
    // Shown once: a fresh visit masks it again.
    await page.goto(`${caelus.base}/ui/deployments/${uid}`);
    assert.ok(!(await page.content()).includes(password), "masked again on the next visit");

    // The reveal is on the deployment's timeline and in the global audit log, as acme's.
    const read = page.locator('#events li[data-action="connection.read"]');
    await read.first().waitFor();
    assert.equal(await read.count(), 1);
    assert.match(await read.innerText(), new RegExp(`${release}-credentials \\(password, username\\).*acme`, "s"));
    const reads = await connectionReads();
    assert.equal(reads.length, 1, JSON.stringify(reads));
    assert.match(reads[0].actor, /acme/);
    assert.equal(reads[0].deployment_uid, uid, JSON.stringify(reads[0]));
    assert.equal(reads[0].tenant, "acme");
  } finally {
    await b.close();
  }
});

test("another tenant cannot read the connection details (404), through the API or the UI", async () => {
  assert.ok(uid && password, "runs after the owner's test");
  const globex = await caelus.tenantToken("globex");
  const resp = await fetch(`${caelus.base}/api/v1/deployments/${uid}/connection`, {
    headers: { authorization: `Bearer ${globex}` },
  });
  assert.equal(resp.status, 404);
  assert.ok(!(await resp.text()).includes(password));

  const b = await browser();
  try {
    const { page } = b;
    await signIn(page, caelus.base, globex);
    const visit = await page.goto(`${caelus.base}/ui/deployments/${uid}`);
    assert.equal(visit.status(), 404);
    // The reveal form posted with globex's own valid CSRF token is refused as well.
    await page.goto(`${caelus.base}/ui/deployments`);
    const csrf = await page.locator('input[name="_csrf"]').first().inputValue();
    const reveal = await page.evaluate(async ([u, token]) => {
      const r = await fetch(`/ui/deployments/${u}/connection`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: token }).toString(),
      });
      return { status: r.status, body: await r.text() };
    }, [uid, csrf]);
    assert.equal(reveal.status, 404);
    assert.ok(!reveal.body.includes(password));
  } finally {
    await b.close();
  }
  // Nothing read, nothing recorded beyond the owner's one reveal.
  const reads = await connectionReads();
  assert.equal(reads.length, 1, JSON.stringify(reads));
  // An admin may read them too, and that read is recorded as the admin's.
  const asAdmin = await caelus.api("GET", `/api/v1/deployments/${uid}/connection`, caelus.admin);
  assert.equal(asAdmin.items[0].values.password, password);
  const after = await connectionReads();
  assert.equal(after.length, 2);
  assert.match(after[0].actor, /dev-admin/);
});
