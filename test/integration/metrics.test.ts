/**
 * The Prometheus endpoint of a real roomkey (all roles in one process) on
 * FerretDB and Redis: each series named in the README is scraped before and
 * after what should move it.
 */
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnvironmentName } from "../../src/domain/environments/environment-name.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { queueName } from "../../src/queue/queue-names.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { connectClient, grpcFailure, headersFor, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

let d: Deployment;
let provider: ApiKeyProvider;
let env: string;

beforeAll(async () => {
  provider = await startApiKeyProvider();
  // The sweeps' schedules stay put during the test: the delayed count moves only with the test's own job.
  d = await startDeployment(
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "3600000",
      ROOMKEY_REFRESH_SWEEP_MS: "3600000",
    }),
  );
  env = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(env));
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: apiKeyIntegration("keyed", provider.url) },
    d.admin(env),
  );
});

afterAll(async () => {
  await d?.stop();
  await provider?.stop();
});

async function scrape(path = "/metrics"): Promise<{ status: number; body: string; type: string | null }> {
  const response = await fetch(`http://127.0.0.1:${d.server.app.metricsPort}${path}`);
  return { status: response.status, body: await response.text(), type: response.headers.get("content-type") };
}

/** The value of one series: the line with exactly these labels (in any order); 0 when absent. */
function value(body: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of body.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf("{");
    const close = line.lastIndexOf("}");
    const found =
      open > 0 && line.startsWith(`${name}{`)
        ? line
            .slice(open + 1, close)
            .split(",")
            .sort()
        : [];
    if (found.length === wanted.length && found.every((label, i) => label === wanted[i])) {
      return Number(line.slice((open > 0 && line.startsWith(`${name}{`) ? close : name.length) + 1).trim());
    }
  }
  return 0;
}

const rpc = (service: string, method: string, code: string) => ({ service: `roomkey.v1.${service}`, method, code });

describe("the metrics endpoint", () => {
  it("serves the Prometheus text format at /metrics only", async () => {
    const { status, type, body } = await scrape();
    expect(status).toBe(200);
    expect(type).toContain("text/plain");
    expect(body).toContain("# TYPE roomkey_rpc_handled_total counter");
    expect((await scrape("/other")).status).toBe(404);
    const post = await fetch(`http://127.0.0.1:${d.server.app.metricsPort}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
  });

  it("counts calls by method and code, once each, on both transports, with latency histograms", async () => {
    const before = (await scrape()).body;
    const ok = rpc("EnvironmentService", "GetEnvironment", "OK");
    await d.environments.unary(EnvironmentService.method.getEnvironment, {}, d.admin(env));
    await d.environments.unary(EnvironmentService.method.getEnvironment, {}, d.admin(env));
    // A refusal at admission on the native gRPC transport (never reaches a handler) and over Connect (does).
    await grpcFailure(d.environments.unary(EnvironmentService.method.getEnvironment, {}, metadataFor(env, "nope")));
    const connect = connectClient(EnvironmentService, d.server.app.httpPort);
    await expect(connect.getEnvironment({}, { headers: headersFor(env, "nope") })).rejects.toThrow();
    const after = (await scrape()).body;
    expect(value(after, "roomkey_rpc_handled_total", ok) - value(before, "roomkey_rpc_handled_total", ok)).toBe(2);
    const refused = rpc("EnvironmentService", "GetEnvironment", "UNAUTHENTICATED");
    expect(
      value(after, "roomkey_rpc_handled_total", refused) - value(before, "roomkey_rpc_handled_total", refused),
    ).toBe(2);
    const count =
      value(after, "roomkey_rpc_duration_seconds_count", ok) - value(before, "roomkey_rpc_duration_seconds_count", ok);
    expect(count).toBe(2);
    expect(value(after, "roomkey_rpc_duration_seconds_bucket", { ...ok, le: "+Inf" })).toBeGreaterThanOrEqual(2);
    const reason = { reason: "CREDENTIALS_INVALID" };
    expect(
      value(after, "roomkey_auth_failures_total", reason) - value(before, "roomkey_auth_failures_total", reason),
    ).toBe(2);
  });

  it("labels a token used in another environment by both environments, and unknown names as other", async () => {
    const created = await d.tokens.unary(
      TokenService.method.createToken,
      { name: "wrong-room", scopes: ["tokens:read"] },
      d.admin(env),
    );
    const secret = created.secret;
    const before = (await scrape()).body;
    await grpcFailure(d.tokens.unary(TokenService.method.listTokens, {}, metadataFor("development", secret)));
    // A name no environment has: a caller must not be able to mint label values.
    const madeUp = randomEnvironmentName();
    await grpcFailure(d.tokens.unary(TokenService.method.listTokens, {}, metadataFor(madeUp, secret)));
    const after = (await scrape()).body;
    const series = "roomkey_auth_wrong_environment_total";
    const known = { requested_environment: "development", token_environment: env };
    const other = { requested_environment: "other", token_environment: env };
    expect(value(after, series, known) - value(before, series, known)).toBe(1);
    expect(value(after, series, other) - value(before, series, other)).toBe(1);
    expect(after).not.toContain(madeUp);
    // Secrets and ids never appear.
    expect(after).not.toContain(secret);
    expect(after).not.toContain(created.token?.id ?? "missing id");
    expect(after).not.toContain(d.server.adminKey);
  });

  it("counts token cache hits and misses", async () => {
    const { secret } = await d.tokens.unary(
      TokenService.method.createToken,
      { name: "cached", scopes: ["tokens:read"] },
      d.admin(env),
    );
    const before = (await scrape()).body;
    for (let i = 0; i < 5; i++) await d.tokens.unary(TokenService.method.listTokens, {}, metadataFor(env, secret));
    const after = (await scrape()).body;
    const moved = (result: string) =>
      value(after, "roomkey_token_cache_lookups_total", { result }) -
      value(before, "roomkey_token_cache_lookups_total", { result });
    expect(moved("miss")).toBeGreaterThanOrEqual(1);
    expect(moved("hit")).toBeGreaterThanOrEqual(4);
  });

  it("reports handshake jobs, provider calls and queue depth per environment", async () => {
    const before = (await scrape()).body;
    const key = `sk_metrics_${Date.now()}`;
    provider.allow(key, { id: "remote-metrics", name: "Metrics" });
    const { account } = await d.accounts.unary(
      AccountService.method.connectAccount,
      { integration: "keyed", tenantId: "t1", credential: { case: "apiKey", value: { key } } },
      d.admin(env),
    );
    await eventually(
      async () =>
        (await d.accounts.unary(AccountService.method.getAccount, { id: account?.id ?? "" }, d.admin(env))).account
          ?.status === AccountStatus.ACTIVE,
      10_000,
      "the account connects",
    );
    const job = { queue: "handshake", job: "connect", outcome: "completed" };
    const call = { call: "credential_check", outcome: "2xx" };
    await eventually(
      async () =>
        value((await scrape()).body, "roomkey_job_duration_seconds_count", job) >
        value(before, "roomkey_job_duration_seconds_count", job),
      5_000,
      "the handshake's duration is observed",
    );
    // A key the provider refuses: the handshake ends the account FAILED, the call is a 4xx.
    const { account: refused } = await d.accounts.unary(
      AccountService.method.connectAccount,
      { integration: "keyed", tenantId: "t2", credential: { case: "apiKey", value: { key: "sk_unknown" } } },
      d.admin(env),
    );
    const handshake = (outcome: string) => ({ environment: env, outcome });
    await eventually(
      async () => value((await scrape()).body, "roomkey_handshakes_total", handshake("failed")) === 1,
      10_000,
      "the refused handshake is counted",
    );
    const after = (await scrape()).body;
    expect(value(after, "roomkey_handshakes_total", handshake("active"))).toBe(1);
    const rejected = { call: "credential_check", outcome: "4xx" };
    expect(
      value(after, "roomkey_provider_calls_total", rejected) - value(before, "roomkey_provider_calls_total", rejected),
    ).toBe(1);
    expect(after).not.toContain(refused?.id ?? "missing id");
    expect(
      value(after, "roomkey_provider_calls_total", call) - value(before, "roomkey_provider_calls_total", call),
    ).toBe(1);
    expect(value(after, "roomkey_provider_call_duration_seconds_count", call)).toBeGreaterThanOrEqual(1);
    expect(after).not.toContain(account?.id ?? "missing id");
    expect(after).not.toContain(key);

    // Queue depth: a job delayed an hour on this environment's handshake queue shows as delayed
    // (beside the next scheduled sweep, which waits there too).
    const labels = { environment: env, queue: "handshake", state: "delayed" };
    const scheduled = value(after, "roomkey_queue_jobs", labels);
    expect(after).toContain(`roomkey_queue_jobs{environment="${env}",queue="rotation",state="waiting"}`);
    const queue = new Queue(queueName(parseEnvironmentName(env), "handshake"), {
      connection: d.redis,
      prefix: d.server.config.ROOMKEY_QUEUE_PREFIX,
    });
    const delayed = await queue.add("sweep-connecting", {}, { delay: 3_600_000 });
    // Queue counts are read at most once a second: the job shows within that.
    const delayedNow = async () => value((await scrape()).body, "roomkey_queue_jobs", labels);
    await eventually(async () => (await delayedNow()) === scheduled + 1, 5_000, "the delayed job is counted");
    for (const { body } of await Promise.all([scrape(), scrape()])) {
      expect(value(body, "roomkey_queue_jobs", labels)).toBe(scheduled + 1);
    }
    await delayed.remove();
    await eventually(async () => (await delayedNow()) === scheduled, 5_000, "the removed job is no longer counted");
    await queue.close();
  });

  it("says the backends are up, and carries the process's own metrics", async () => {
    const { body } = await scrape();
    expect(value(body, "roomkey_backend_up", { backend: "mongodb" })).toBe(1);
    expect(value(body, "roomkey_backend_up", { backend: "redis" })).toBe(1);
    expect(value(body, "roomkey_environments")).toBeGreaterThanOrEqual(4);
    expect(body).toContain("process_cpu_user_seconds_total");
    expect(body).toContain("nodejs_heap_size_used_bytes");
    expect(body).toContain("nodejs_eventloop_lag_p99_seconds");
  });

  it("when roomkey shuts down, then its metrics port is closed", async () => {
    const own = await startDeployment(testConfig());
    const url = `http://127.0.0.1:${own.server.app.metricsPort}/metrics`;
    try {
      expect((await fetch(url)).status).toBe(200);
    } finally {
      await own.stop();
    }
    await expect(fetch(url)).rejects.toThrow();
  });

  it("grows by a bounded size per environment", async () => {
    const sizeBefore = Buffer.byteLength((await scrape()).body);
    const added = 10;
    const names = Array.from({ length: added }, () => randomEnvironmentName());
    for (const name of names)
      await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
    await eventually(async () => value((await scrape()).body, "roomkey_environments") >= 4 + added, 5_000, "known");
    const sizeAfter = Buffer.byteLength((await scrape()).body);
    const perEnvironment = (sizeAfter - sizeBefore) / added;
    console.log(
      `metrics: ${sizeBefore} bytes before, ${sizeAfter} after ${added} environments: ${perEnvironment.toFixed(0)} bytes per environment`,
    );
    // Eight queue-depth series of about 90 bytes each: the figure is printed, and bounded loosely here.
    expect(perEnvironment).toBeGreaterThan(400);
    expect(perEnvironment).toBeLessThan(2_000);
    for (const name of names) {
      await d.environments.unary(EnvironmentService.method.deleteEnvironment, {}, d.admin(name));
    }
  });
});
