import type { MessageShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OwnService, ownRedis } from "../helpers/own-services.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const a = AccountService.method;
type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;

/**
 * The connecting sweep's interval and grace. Long on purpose: accounts connected just before Redis
 * returns wait for it unless a sweep without grace runs once Redis is back, which the tests require.
 */
const sweepMs = 30_000;
/** The worker's fleet lease: its heartbeat, every third of it, also tells when Redis lost its data. */
const leaseMs = 3_000;

let provider: ApiKeyProvider;
let redisServer: OwnService;
let config: Config;
let d: Deployment;

beforeAll(async () => {
  provider = await startApiKeyProvider();
  redisServer = await ownRedis();
  config = testConfig({
    REDIS_URL: redisServer.url,
    ROOMKEY_HANDSHAKE_SWEEP_MS: String(sweepMs),
    ROOMKEY_WORKER_LEASE_MS: String(leaseMs),
    ROOMKEY_PROVIDER_RETRY_MS: "1000",
    ROOMKEY_JOB_LOCK_MS: "2000",
  });
  d = await startDeployment(config);
  // This test's own client: it reconnects when Redis comes back.
  d.redis.on("error", () => undefined);
});

afterAll(async () => {
  await d?.stop();
  await redisServer?.dispose();
  await provider?.stop();
});

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: apiKeyIntegration("keyed", provider.url) },
    d.admin(name),
  );
  await eventually(() => d.server.app.servedEnvironments().includes(name), 10_000, "the workers serve it");
  return name;
}

/** Connects `count` accounts; every fifth key is one the provider refuses. Returns ids and whether each is valid. */
async function connectAccounts(environment: string, count: number, label: string) {
  const accounts: { id: string; key: string; valid: boolean }[] = [];
  for (let i = 0; i < count; i++) {
    const key = `sk_${label}_${i}_${Math.random().toString(36).slice(2)}`;
    const valid = i % 5 !== 4;
    if (valid) provider.allow(key, { id: `remote-${label}-${i}`, name: `Remote ${i}` });
    const { account } = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: key } } },
      d.admin(environment),
    );
    expect(account?.status).toBe(AccountStatus.CONNECTING);
    accounts.push({ id: account?.id ?? "", key, valid });
  }
  return accounts;
}

async function statuses(environment: string, ids: string[]) {
  return Promise.all(
    ids.map(async (id) => (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account),
  );
}

/** Waits until no account of the environment is CONNECTING (one list call per poll); returns the time it took. */
async function allSettled(environment: string, timeoutMs: number): Promise<number> {
  return eventually(
    async () => {
      const { accounts } = await d.accounts.unary(
        a.listAccounts,
        { status: AccountStatus.CONNECTING, pageSize: 1 },
        d.admin(environment),
      );
      return accounts.length === 0;
    },
    timeoutMs,
    "every account leaves CONNECTING",
  );
}

async function expectOutcomes(environment: string, accounts: { id: string; valid: boolean }[]) {
  const final = await statuses(
    environment,
    accounts.map((x) => x.id),
  );
  for (const [i, account] of final.entries()) {
    expect(account?.status, `account ${i}`).toBe(accounts[i]?.valid ? AccountStatus.ACTIVE : AccountStatus.FAILED);
  }
}

/** The worker processes registered in Redis now (the heartbeat writes its own again after a loss). */
async function fleetMembers(): Promise<string[]> {
  return d.redis.zrange(`${config.ROOMKEY_QUEUE_PREFIX}:{fleet}:workers`, 0, -1);
}

describe("when Redis loses its data", () => {
  it("when Redis is killed, accounts are connected meanwhile and Redis comes back empty, then every account ends ACTIVE or FAILED within seconds, with no restart", async () => {
    const environment = await newEnvironment();
    expect(await fleetMembers()).toHaveLength(1);
    // A watcher from before the outage: its subscription must come back with Redis.
    const channel = `${config.ROOMKEY_QUEUE_PREFIX}:{events}:accounts.${environment}`;
    const watch = d.accounts.stream(a.watchAccounts, {}, d.admin(environment));
    const events: WatchEvent[] = [];
    watch.on("data", (event: WatchEvent) => events.push(event));
    watch.on("error", () => undefined);
    await eventually(
      async () => Number(((await d.redis.pubsub("NUMSUB", channel)) as [string, number])[1]) > 0,
      5_000,
      "the watch subscribes",
    );

    await redisServer.stop();
    // ConnectAccount still answers (CONNECTING): the handshake could not be queued.
    const accounts = await connectAccounts(environment, 50, "outage");
    await redisServer.start();
    const returned = Date.now();

    await allSettled(environment, sweepMs * 3);
    const settledMs = Date.now() - returned;
    const firstCallMs = Math.min(...provider.callTimes().filter((t) => t >= returned)) - returned;
    console.log(
      `Redis restarted empty: ${accounts.length} accounts connected during the outage left CONNECTING ${settledMs} ms after Redis returned, the first handshake reached the provider after ${firstCallMs} ms (sweep interval and grace ${sweepMs} ms, heartbeat every ${leaseMs / 3} ms)`,
    );
    // The sweep without grace, not the scheduled one after its grace.
    expect(settledMs).toBeLessThan(sweepMs / 2);
    await expectOutcomes(environment, accounts);
    expect(await fleetMembers()).toHaveLength(1);
    expect(d.server.app.servedEnvironments()).toContain(environment);
    // ioredis subscribed again: the watcher saw the outcomes.
    await eventually(
      () =>
        accounts.every((x) =>
          events.some((e) => e.account?.id === x.id && e.previousStatus === AccountStatus.CONNECTING),
        ),
      5_000,
      "the watcher from before the outage sees every outcome",
    );
    watch.cancel();
  }, 180_000);

  it("when Redis is flushed while up, then lost handshakes run again, new accounts connect, and the worker is registered again", async () => {
    const environment = await newEnvironment();
    // The provider is unavailable: every handshake waits in Redis for its next retry.
    provider.always({ kind: "status", status: 503 });
    const lost = await connectAccounts(environment, 10, "lost");
    await eventually(
      () => lost.every((x) => provider.callsWith(x.key) > 0),
      10_000,
      "every handshake reached the provider once",
    );
    await d.redis.flushall();
    const flushed = Date.now();
    provider.always(undefined);
    const fresh = await connectAccounts(environment, 10, "fresh");

    await allSettled(environment, sweepMs * 3);
    const settledMs = Date.now() - flushed;
    const lostKeys = new Set(lost.filter((x) => x.valid).map((x) => x.key));
    const rerun = Math.max(...[...lostKeys].map((key) => provider.callsWith(key)));
    console.log(
      `FLUSHALL with Redis up: ${lost.length} lost handshakes and ${fresh.length} accounts connected after it left CONNECTING ${settledMs} ms after the flush (sweep interval and grace ${sweepMs} ms, heartbeat every ${leaseMs / 3} ms); a lost valid key reached the provider at most ${rerun} times`,
    );
    expect(settledMs).toBeLessThan(sweepMs / 2);
    await expectOutcomes(environment, lost);
    await expectOutcomes(environment, fresh);
    await eventually(async () => (await fleetMembers()).length === 1, 5_000, "the worker registered again");
    expect(d.server.app.servedEnvironments()).toContain(environment);
  }, 180_000);
});
