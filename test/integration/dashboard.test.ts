/**
 * The queue dashboard (Bull Board at /admin/queues) in a real browser:
 * Debian's Chromium driven by playwright-core, against a real roomkey on
 * FerretDB and Redis. The page is refused without the admin key, loads with
 * it, and lists every environment's queues, grouped by environment.
 *
 * Chromium comes from scripts/ensure-chromium.sh (ROOMKEY_CHROMIUM). Without
 * one the browser tests are skipped, unless ROOMKEY_REQUIRE_BROWSER=1 (CI).
 * ROOMKEY_UPDATE_SCREENSHOT=1 writes the screenshot into docs/images/.
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardPath } from "../../src/admin/queue-dashboard.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { testQueue } from "../helpers/queues.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const executablePath = process.env.ROOMKEY_CHROMIUM ?? "/usr/bin/chromium";
const haveBrowser = existsSync(executablePath);
if (!haveBrowser && process.env.ROOMKEY_REQUIRE_BROWSER === "1") {
  throw new Error(`no Chromium at ${executablePath}: run scripts/ensure-chromium.sh`);
}
const root = resolve(import.meta.dirname, "../..");

let d: Deployment;
let browser: Browser;
let extra: string;
let base: string;

beforeAll(async () => {
  d = await startDeployment(testConfig());
  extra = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(extra));
  base = `http://127.0.0.1:${d.server.app.httpPort}${dashboardPath}`;
  if (haveBrowser) {
    browser = await chromium.launch({
      executablePath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await d?.stop();
});

const basic = (password: string) => `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`;

describe.skipIf(!haveBrowser)("the queue dashboard in Chromium", () => {
  /**
   * What the browser got for the dashboard: the statuses of its answers. Headless Chromium cannot show
   * the sign-in prompt, so a 401 with a Basic challenge either ends the navigation there or fails it
   * (ERR_INVALID_AUTH_CREDENTIALS); either way no page of the dashboard is shown.
   */
  async function visit(credentials?: { username: string; password: string }) {
    const context = await browser.newContext(credentials ? { httpCredentials: credentials } : {});
    const page = await context.newPage();
    const answers: { status: number; challenge?: string }[] = [];
    page.on("response", (r) => answers.push({ status: r.status(), challenge: r.headers()["www-authenticate"] }));
    const failure = await page.goto(base).then(
      () => undefined,
      (error: Error) => error.message,
    );
    const text = await page.textContent("body").catch(() => "");
    await context.close();
    return { answers, failure, text };
  }

  it("is refused without the admin key, and with a wrong one", async () => {
    for (const credentials of [undefined, { username: "admin", password: "not-the-key" }]) {
      const { answers, failure, text } = await visit(credentials);
      expect(answers.length).toBeGreaterThanOrEqual(1);
      for (const answer of answers) {
        expect(answer.status).toBe(401);
        expect(answer.challenge).toMatch(/^Basic realm=/);
      }
      if (failure) expect(failure).toMatch(/ERR_INVALID_AUTH_CREDENTIALS/);
      expect(text ?? "").not.toContain("handshake");
    }
  });

  it("loads with the admin key and lists every environment's queues, grouped by environment", async () => {
    const context = await browser.newContext({
      httpCredentials: { username: "admin", password: d.server.adminKey },
      viewport: { width: 1280, height: 800 },
    });
    const page = await context.newPage();
    const response = await page.goto(base);
    expect(response?.status()).toBe(200);
    const environments = ["development", "staging", "production", extra];
    // The menu shows each environment as a group holding its handshake and rotation queues, under the
    // queue names' first part: the environment in its Redis Cluster hash tag.
    for (const environment of environments) {
      await page.getByText(`{${environment}}`, { exact: true }).first().waitFor({ timeout: 15_000 });
    }
    await expect(page.getByText("handshake", { exact: true }).count()).resolves.toBeGreaterThanOrEqual(1);
    // Every queue, by its full name, in what the page fetched.
    const listed = await page.evaluate(async (url) => {
      const answer = await fetch(`${url}/api/queues?activeQueue=&page=1&jobsPerPage=1`);
      const body = (await answer.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
      return body.queues.map((q) => ({ name: q.name, readOnly: q.readOnlyMode }));
    }, base);
    const names = listed.map((q) => q.name);
    for (const environment of environments) {
      expect(names).toContain(`{${environment}}.handshake`);
      expect(names).toContain(`{${environment}}.rotation`);
    }
    expect(listed.every((q) => q.readOnly)).toBe(true);
    // The overview has drawn the queues' counts (not the loading placeholder) before the screenshot.
    await page.getByText("Loading...").waitFor({ state: "detached", timeout: 15_000 });
    await page.waitForLoadState("networkidle");
    const title = await page.title();
    expect(title.length).toBeGreaterThan(0);

    const shot =
      process.env.ROOMKEY_UPDATE_SCREENSHOT === "1"
        ? join(root, "docs", "images", "queue-dashboard.png")
        : join(tmpdir(), `roomkey-dashboard-${process.pid}.png`);
    mkdirSync(resolve(shot, ".."), { recursive: true });
    await page.screenshot({ path: shot });
    expect(existsSync(shot)).toBe(true);
    await context.close();
  });
});

describe("the queue dashboard over HTTP", () => {
  it("refuses every change when read-only, even with the admin key", async () => {
    const queue = `{${extra}}.handshake`;
    for (const path of [`/api/queues/${queue}/pause`, `/api/queues/${queue}/retry/failed`, "/api/queues/pause"]) {
      const answer = await fetch(`${base}${path}`, {
        method: "PUT",
        headers: { authorization: basic(d.server.adminKey) },
      });
      expect(answer.status).toBe(405);
    }
  });

  it("takes the key as a bearer secret, and refuses a wrong one", async () => {
    const ok = await fetch(`${base}/api/queues`, { headers: { authorization: `Bearer ${d.server.adminKey}` } });
    expect(ok.status).toBe(200);
    const wrong = await fetch(`${base}/api/queues`, { headers: { authorization: "Bearer wrong" } });
    expect(wrong.status).toBe(401);
  });
});

describe("the queue dashboard after an environment is deleted and created again", () => {
  it("shows the environment's queues and their counts after it is deleted and created again", async () => {
    const name = randomEnvironmentName();
    const headers = { authorization: basic(d.server.adminKey) };
    const queuesListed = async () => {
      const answer = await fetch(`${base}/api/queues`, { headers });
      expect(answer.status).toBe(200);
      return ((await answer.json()) as { queues: { name: string }[] }).queues.map((q) => q.name);
    };
    await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
    await eventually(async () => (await queuesListed()).includes(`{${name}}.handshake`), 5_000, "listed");
    // Deleted and created again with no visit in between: the names shown are the same as before.
    await d.environments.unary(EnvironmentService.method.deleteEnvironment, {}, d.admin(name));
    await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
    const key = `{${name}}.handshake`;
    const counts = await fetch(`${base}/api/queues?activeQueue=${key}&status=latest`, { headers });
    expect(counts.status).toBe(200);
    const body = (await counts.json()) as { queues: { name: string; counts: Record<string, number> }[] };
    expect(body.queues.find((q) => q.name === key)?.counts).toBeDefined();
  });
});

describe("the queue dashboard set to retry-clean, with the failure throttle on", () => {
  let own: Deployment;
  beforeAll(async () => {
    own = await startDeployment(
      testConfig({
        ROOMKEY_DASHBOARD: "retry-clean",
        ROOMKEY_AUTH_FAILURES_PER_MINUTE: "1",
        ROOMKEY_AUTH_FAILURE_BURST: "2",
        ROOMKEY_WORKER_IDLE_MS: "500",
      }),
    );
  });
  afterAll(async () => {
    await own?.stop();
  });

  it("when a failed job is retried on an idle queue, then a worker wakes for it and runs it again", async () => {
    const url = `http://127.0.0.1:${own.server.app.httpPort}${dashboardPath}`;
    const queue = testQueue(own.redis, own.server.config.ROOMKEY_QUEUE_PREFIX, "staging", "handshake");
    try {
      // No processor for it: it fails for good at once.
      const job = await queue.addAndWake("unknown-job", {});
      await eventually(async () => (await job.getState()) === "failed", 10_000, "failed once");
      const first = (await queue.getJob(job.id ?? ""))?.finishedOn ?? 0;
      // The queue goes idle: no worker left that would take the retried job by itself.
      await eventually(() => !own.server.app.liveQueues().includes(queue.name), 10_000, "the worker closed");
      const retry = await fetch(`${url}/api/queues/${encodeURIComponent(queue.name)}/retry/failed`, {
        method: "PUT",
        headers: { authorization: basic(own.server.adminKey) },
      });
      expect(retry.status).toBe(200);
      await eventually(
        async () => ((await queue.getJob(job.id ?? ""))?.finishedOn ?? 0) > first,
        10_000,
        "the retried job ran again",
      );
    } finally {
      await queue.close();
    }
  });

  it("lets retry and clean through, from the same origin, and nothing else", async () => {
    const url = `http://127.0.0.1:${own.server.app.httpPort}${dashboardPath}`;
    const headers = { authorization: basic(own.server.adminKey) };
    const queue = "{development}.handshake";
    const clean = await fetch(`${url}/api/queues/${queue}/clean/failed`, { method: "PUT", headers });
    expect(clean.status).toBe(200);
    const retry = await fetch(`${url}/api/queues/${queue}/retry/failed`, { method: "PUT", headers });
    expect(retry.status).toBe(200);
    // One job's retry and clean reach Bull Board too: it answers that there is no such job (not our 405).
    for (const action of ["retry", "clean"]) {
      const one = await fetch(`${url}/api/queues/${queue}/no-such-job/${action}`, { method: "PUT", headers });
      expect(one.status, action).toBe(404);
    }
    for (const path of [
      `/api/queues/${queue}/pause`,
      `/api/queues/${queue}/obliterate`,
      `/api/queues/${queue}/empty`,
    ]) {
      expect((await fetch(`${url}${path}`, { method: "PUT", headers })).status).toBe(405);
    }
    const crossSite = await fetch(`${url}/api/queues/${queue}/clean/failed`, {
      method: "PUT",
      headers: { ...headers, origin: "https://evil.example" },
    });
    expect(crossSite.status).toBe(405);
  });

  it("when an address sends wrong keys past the burst, then it gets 429, and the admin key still gets in", async () => {
    const url = `http://127.0.0.1:${own.server.app.httpPort}${dashboardPath}/api/queues`;
    const wrong = { authorization: basic("not-the-admin-key") };
    expect((await fetch(url, { headers: wrong })).status).toBe(401);
    expect((await fetch(url, { headers: wrong })).status).toBe(401);
    const blocked = await fetch(url, { headers: wrong });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await fetch(url, { headers: { authorization: basic(own.server.adminKey) } })).status).toBe(200);
  });
});

describe("the queue dashboard turned off", () => {
  it("is not served at all", async () => {
    const own = await startDeployment(testConfig({ ROOMKEY_DASHBOARD: "off" }));
    try {
      const answer = await fetch(`http://127.0.0.1:${own.server.app.httpPort}${dashboardPath}`, {
        headers: { authorization: basic(own.server.adminKey) },
      });
      expect(answer.status).toBe(404);
    } finally {
      await own.stop();
    }
  });
});
