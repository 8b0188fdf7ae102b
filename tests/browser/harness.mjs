// Starts `caelus dev` (API + worker + in-process kubesim + local registry) on free
// ports in a throwaway data dir, and launches Debian's Chromium through
// playwright-core (never a downloaded browser).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const CHROMIUM = process.env.CAELUS_CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Caelus {
  /** `args`: more `caelus dev` flags, e.g. `--require-certification`. */
  static async start({ args = [] } = {}) {
    const c = new Caelus();
    c.dataDir = mkdtempSync(path.join(tmpdir(), "caelus-ui-"));
    const port = await freePort();
    c.registryPort = await freePort();
    c.base = `http://127.0.0.1:${port}`;
    const bin = process.env.CAELUS_BIN || path.join(ROOT, "target/debug/caelus");
    if (!existsSync(bin)) throw new Error(`${bin} not found: run cargo build -p caelus-cli first`);
    c.log = "";
    c.proc = spawn(
      bin,
      ["dev", "--data-dir", c.dataDir, "--listen", `127.0.0.1:${port}`, "--registry-port", String(c.registryPort), ...args],
      { cwd: ROOT, env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    c.proc.stdout.on("data", (d) => (c.log += d));
    c.proc.stderr.on("data", (d) => (c.log += d));
    c.exited = new Promise((r) => c.proc.on("exit", r));
    // Ready when the demo catalog (web 1.0.0 and 2.0.0) is published.
    const deadline = Date.now() + 60_000;
    while (!c.log.includes("demo catalog:")) {
      if (c.proc.exitCode !== null) throw new Error(`caelus dev exited:\n${c.log}`);
      if (Date.now() > deadline) throw new Error(`caelus dev did not publish its catalog:\n${c.log}`);
      await sleep(100);
    }
    c.admin = readFileSync(path.join(c.dataDir, "admin-token"), "utf8").trim();
    return c;
  }

  async api(method, p, token, body) {
    const resp = await fetch(this.base + p, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
    return json;
  }

  async tenantToken(tenant) {
    const t = await this.api("POST", "/api/v1/tokens", this.admin, { name: tenant, role: "tenant", tenant });
    return t.secret;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A fresh browser profile (its own --user-data-dir): no cookies shared with others. */
export async function browser(viewport = { width: 1280, height: 860 }) {
  const profile = mkdtempSync(path.join(tmpdir(), "caelus-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  const page = context.pages()[0] || (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function signIn(page, base, token) {
  await page.goto(`${base}/ui/login`);
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(/\/ui\/deployments/), page.click("button[type=submit]")]);
}
