/**
 * Round trips per operation, counted (issue 15, point 5): MongoDB commands per
 * ConnectAccount -> ACTIVE, per OAuth refresh, per VerifyToken cache miss, per
 * CreateToken and per environment creation; Redis commands per handshake job.
 * These are counts, not timings: no noisy machine blurs them.
 *
 * roomkey runs in this process from the compiled build (as bench/harness.ts
 * explains) as three replicas of one deployment: an `api` replica A, a
 * `worker` replica W and a second `api` replica B that verifies tokens A made.
 * Each reaches MongoDB and Redis through counting proxies of its own
 * (test/helpers/counting-proxy.ts), so every command is told apart by replica
 * and by name. The bench watches progress on connections of its own that no
 * proxy sees (the account's status, the job's state).
 *
 * Each operation runs `BENCH_REPETITIONS` times (default 20) one at a time,
 * after 2 unmeasured warm-up runs. A repetition is counted from the call until
 * the operation is done (the account ACTIVE and its handshake job completed;
 * the refreshed token stored and the refresh job gone; the environment served
 * by the workers) and then until no proxy has seen a command for
 * `BENCH_QUIET_MS` (default 300), which catches what a replica still does
 * after the answer. Replicas also work on their own (the worker's wake-index
 * reads five times a second, its maintenance every 30 s, timers), and that can
 * land in a repetition; so each figure is given twice:
 *
 * - typical: the commands, by name, that most repetitions made exactly (with
 *   how many did, and the range of the totals), steady polls aside: commands
 *   an idle replica sends in nearly every second (the wake-index reads), which
 *   would otherwise make every repetition differ by its length;
 * - net: the mean over all repetitions, steady polls included, less what the
 *   replica sends idle in as long (measured with nothing running for
 *   `BENCH_BASELINE_SECONDS`, default 15, before and after the operations).
 *
 * Connection monitoring and set-up are left out by name and shown apart
 * (`monitorCommands`): the driver's heartbeats and the health probes send them
 * on a timer, and a connection's set-up is no operation's round trip. Under
 * each MongoDB figure, the same commands by collection, from each replica's
 * driver command events, and how the repetitions that differ from the typical
 * one differ.
 *
 *   npm run bench:round-trips     (brings up FerretDB and Redis like the tests)
 *   BENCH_REPETITIONS=20 BENCH_QUIET_MS=300 BENCH_BASELINE_SECONDS=15 npm run bench:round-trips
 *
 * The last line is `round-trips: <JSON>`: the summary's typical and net
 * figures, then every row's, per backend and replica.
 */
import { resolve } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import type { Config } from "../src/config.js";
import { parseEnvironmentName } from "../src/domain/environments/environment-name.js";
import { AccountService } from "../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, VerifyStatus } from "../src/gen/roomkey/v1/token_service_pb.js";
import type * as Main from "../src/main.js";
import { handshakeJobId, queueName, refreshJobId } from "../src/queue/queue-names.js";
import { databaseNames } from "../src/storage/mongo.js";
import { startApiKeyProvider } from "../test/helpers/api-key-provider.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import { type CountingProxy, countingProxy } from "../test/helpers/counting-proxy.js";
import { apiKeyIntegration, oauthIntegration } from "../test/helpers/integrations.js";
import { randomEnvironmentName } from "../test/helpers/names.js";
import { startOAuthProvider } from "../test/helpers/oauth-provider.js";
import { backendUrls, capturedLogger, dropDeployment, testConfig } from "../test/helpers/server.js";

const repetitions = Number(process.env.BENCH_REPETITIONS ?? 20);
const warmups = 2;
const quietMs = Number(process.env.BENCH_QUIET_MS ?? 300);
const baselineSeconds = Number(process.env.BENCH_BASELINE_SECONDS ?? 15);
/** How long one repetition may take before the bench gives up on it. */
const stepTimeoutMs = 30_000;
const root = resolve(import.meta.dirname, "..");

/**
 * Left out of every figure, by name, and shown apart: MongoDB's connection
 * handshake and monitoring (the driver's heartbeats, roomkey's health pings,
 * session clean-up) and Redis's connection set-up and probes. Subscribing is
 * set-up too: a subscribed connection then only receives.
 */
const monitorCommands = {
  // opcode-2004 is OP_QUERY: only a new connection's first hello still goes that way.
  mongodb: ["hello", "ismaster", "opcode-2004", "ping", "buildinfo", "endsessions", "saslstart", "saslcontinue"],
  redis: ["ping", "info", "client", "select", "hello", "subscribe", "psubscribe", "quit"],
} as const;

type Backend = keyof typeof monitorCommands;
type Counts = Map<string, number>;

/** One replica's view of one backend. */
interface Tap {
  backend: Backend;
  replica: Replica;
  proxy: CountingProxy;
}

/** What the taps saw during one window: per tap, the commands by name. */
interface Window {
  ms: number;
  counts: Counts[];
  /** Per replica, MongoDB commands by name and collection, as its driver told them. */
  collections: Counts[];
}

function difference(after: Counts, before: Counts): Counts {
  const out: Counts = new Map();
  for (const [name, n] of after) {
    const d = n - (before.get(name) ?? 0);
    if (d !== 0) out.set(name, d);
  }
  return out;
}

function sum(maps: Counts[]): Counts {
  const out: Counts = new Map();
  for (const map of maps) for (const [name, n] of map) out.set(name, (out.get(name) ?? 0) + n);
  return out;
}

const isMonitor = (backend: Backend, name: string) => (monitorCommands[backend] as readonly string[]).includes(name);

function split(backend: Backend, counts: Counts): { counted: Counts; monitor: Counts } {
  const counted: Counts = new Map();
  const monitor: Counts = new Map();
  for (const [name, n] of counts) (isMonitor(backend, name) ? monitor : counted).set(name, n);
  return { counted, monitor };
}

const total = (counts: Counts) => [...counts.values()].reduce((a, b) => a + b, 0);
const byName = (counts: Counts) =>
  [...counts]
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
    .map(([name, n]) => `${name} ${n}`)
    .join(", ") || "none";
const signature = (counts: Counts) => JSON.stringify([...counts].sort(([a], [b]) => (a < b ? -1 : 1)));

/** The counts most repetitions made exactly, and how many did; ties go to the fewer commands. */
function typicalOf(perRepetition: Counts[]): { counts: Counts; n: number } | undefined {
  return variantsOf(perRepetition)[0];
}

/** Each distinct set of counts the repetitions made, with how many made it: the most made first. */
function variantsOf(perRepetition: Counts[]): { counts: Counts; n: number }[] {
  const seen = new Map<string, { counts: Counts; n: number }>();
  for (const counts of perRepetition) {
    const key = signature(counts);
    const entry = seen.get(key);
    if (entry) entry.n++;
    else seen.set(key, { counts, n: 1 });
  }
  return [...seen.values()].sort((a, b) => b.n - a.n || total(a.counts) - total(b.counts));
}

/** What `counts` has more or less than `typical`, by name: `+find env.tokens 1, -delete env.x 2`. */
function beyond(counts: Counts, typical: Counts): string {
  const names = new Set([...counts.keys(), ...typical.keys()]);
  return [...names]
    .sort()
    .flatMap((name) => {
      const d = (counts.get(name) ?? 0) - (typical.get(name) ?? 0);
      return d === 0 ? [] : [`${d > 0 ? "+" : ""}${d} ${name}`];
    })
    .join(", ");
}

/** A figure for one backend and one replica (or all replicas together). */
interface Figure {
  /** The commands most repetitions made exactly, steady polls aside; ties go to the fewer. */
  typical: Counts;
  /** How many repetitions made exactly `typical`. */
  atTypical: number;
  min: number;
  max: number;
  /** The mean total, steady polls included, less the idle rate times the repetitions' length. */
  net: number;
  /** Steady polls per repetition, by name (mean), and what idle replicas would have sent in as long. */
  polls: Map<string, { mean: number; idle: number }>;
  /** Monitoring and set-up commands per repetition, by name (mean). */
  monitor: Map<string, number>;
}

/**
 * `perRepetition`: per repetition, what the taps of one figure saw (summed).
 * `idlePerMs`: their idle rate, by name, of what is not left out.
 */
function figure(
  backend: Backend,
  perRepetition: Counts[],
  ms: number[],
  idlePerMs: Counts,
  isPoll: (name: string) => boolean,
): Figure {
  const parts = perRepetition.map((c) => {
    const { counted: all, monitor } = split(backend, c);
    const counted: Counts = new Map();
    const polls: Counts = new Map();
    for (const [name, n] of all) (isPoll(name) ? polls : counted).set(name, n);
    return { all, counted, polls, monitor };
  });
  const best = typicalOf(parts.map((p) => p.counted));
  const totals = parts.map((p) => total(p.counted));
  const meanMs = ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
  const mean = (maps: Counts[]) => {
    const out = new Map<string, number>();
    for (const [name, n] of sum(maps)) out.set(name, n / Math.max(1, maps.length));
    return out;
  };
  const polls = new Map<string, { mean: number; idle: number }>();
  for (const [name, n] of mean(parts.map((p) => p.polls))) {
    polls.set(name, { mean: n, idle: (idlePerMs.get(name) ?? 0) * meanMs });
  }
  const meanAll = total(mean(parts.map((p) => p.all)));
  return {
    typical: best?.counts ?? new Map(),
    atTypical: best?.n ?? 0,
    min: Math.min(...totals),
    max: Math.max(...totals),
    net: meanAll - total(idlePerMs) * meanMs,
    polls,
    monitor: mean(parts.map((p) => p.monitor)),
  };
}

// --- the deployment ----------------------------------------------------------

const urls = backendUrls();
const hostOf = (url: string, port: number) => {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || port) };
};
const replicas = ["A api", "W worker", "B api"] as const;
type Replica = (typeof replicas)[number];
const taps: Tap[] = [];
for (const replica of replicas) {
  taps.push({ backend: "mongodb", replica, proxy: await countingProxy(hostOf(urls.mongodbUrl, 27017), "mongodb") });
  taps.push({ backend: "redis", replica, proxy: await countingProxy(hostOf(urls.redisUrl, 6379), "redis") });
}
const tapOf = (backend: Backend, replica: Replica) => {
  const tap = taps.find((t) => t.backend === backend && t.replica === replica);
  if (!tap) throw new Error(`no ${backend} tap for ${replica}`);
  return tap;
};

const environment = "bench";
const config = testConfig({
  ROOMKEY_DEFAULT_ENVIRONMENTS: environment,
  // Timers as slow as configuration allows, so that idle replicas stay as quiet as they can.
  ROOMKEY_ENVIRONMENT_REFRESH_MS: "60000",
  ROOMKEY_USAGE_FLUSH_MS: "60000",
  ROOMKEY_HANDSHAKE_SWEEP_MS: "3600000",
  ROOMKEY_REFRESH_SWEEP_MS: "3600000",
  ROOMKEY_WEBHOOK_SWEEP_MS: "3600000",
  // A worker process renews its fleet lease (one Redis transaction) three times per lease.
  ROOMKEY_WORKER_LEASE_MS: "600000",
  ROOMKEY_METRICS_PORT: "off",
});
const configFor = (replica: Replica): Config => ({
  ...config,
  // Command events for watchCollections (the URL's query already says directConnection).
  MONGODB_URL: `${tapOf("mongodb", replica).proxy.url}&monitorCommands=true`,
  REDIS_URL: tapOf("redis", replica).proxy.url,
});
const { logger, lines: logLines } = capturedLogger("warn");
const main: typeof Main = await import(resolve(root, "dist/src/main.js"));
const apiKeys = await startApiKeyProvider();
const oauth = await startOAuthProvider();
// The bench's own view, through no proxy.
const mongo = new MongoClient(urls.mongodbUrl);
const redis = new Redis(urls.redisUrl, { maxRetriesPerRequest: null });
const names = databaseNames(config.ROOMKEY_DB_PREFIX);
const accountsOf = (env: string) =>
  mongo.db(names.environment(env)).collection<{ _id: string; status: string; credentialsVersion: number }>("accounts");
const handshakeQueue = new Queue(queueName(parseEnvironmentName(environment), "handshake"), {
  connection: redis,
  prefix: config.ROOMKEY_QUEUE_PREFIX,
});
const rotationQueue = new Queue(queueName(parseEnvironmentName(environment), "rotation"), {
  connection: redis,
  prefix: config.ROOMKEY_QUEUE_PREFIX,
});

const started: Main.Roomkey[] = [];
/**
 * MongoDB commands by name and collection (`find env.accounts`), per replica,
 * from its driver's command events: what the proxies count, told apart by
 * collection. The proxies' counts are the figures; these name them.
 */
const collectionCounts = replicas.map((): Counts => new Map());
function watchCollections(replica: Replica): Main.RoomkeySeams {
  const counts = collectionCounts[replicas.indexOf(replica)] ?? new Map();
  const database = (name: string) =>
    name === names.control ? "control" : name.startsWith(names.environmentPrefix) ? "env" : name;
  return {
    inspect({ clients }) {
      clients.mongo.on("commandStarted", (event) => {
        const name = event.commandName.toLowerCase();
        if (isMonitor("mongodb", name)) return;
        const target = event.command[event.commandName];
        const collection =
          typeof target === "string"
            ? target
            : typeof event.command.collection === "string"
              ? event.command.collection
              : "";
        const key = `${name} ${database(event.databaseName)}${collection ? `.${collection}` : ""}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      });
    },
  };
}

async function start(replica: Replica, role: Main.Role): Promise<Main.Roomkey> {
  const app = await main.startRoomkey(configFor(replica), role, logger, watchCollections(replica));
  started.push(app);
  await app.ready;
  return app;
}

const a = await start("A api", "api");
const w = await start("W worker", "worker");
const onA = {
  environments: grpcClient(EnvironmentService, `127.0.0.1:${a.grpcPort}`),
  tokens: grpcClient(TokenService, `127.0.0.1:${a.grpcPort}`),
  accounts: grpcClient(AccountService, `127.0.0.1:${a.grpcPort}`),
};
const admin = (env: string) => metadataFor(env, config.ROOMKEY_ADMIN_KEY);
let b: Main.Roomkey | undefined;
let tokensOnB: ReturnType<typeof grpcClient<typeof TokenService>> | undefined;

let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const client of [...Object.values(onA), tokensOnB]) client?.close();
    for (const app of started.reverse()) await app.shutdown();
    await Promise.all([handshakeQueue.close(), rotationQueue.close()]);
    await mongo.close();
    redis.disconnect();
    await dropDeployment(config);
    await Promise.all([...taps.map((t) => t.proxy.close()), apiKeys.stop(), oauth.stop()]);
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: cleaning up\n`);
    cleanUp().finally(() => process.exit(1));
  });
}

// --- measuring ---------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const snapshot = () => ({
  taps: taps.map((t) => t.proxy.counts()),
  collections: collectionCounts.map((c) => new Map(c)),
});
function since(before: ReturnType<typeof snapshot>, startedAt: number): Window {
  const after = snapshot();
  return {
    ms: performance.now() - startedAt,
    counts: after.taps.map((c, i) => difference(c, before.taps[i] ?? new Map())),
    collections: after.collections.map((c, i) => difference(c, before.collections[i] ?? new Map())),
  };
}
/**
 * Per tap, the commands an idle replica sends in nearly every second of the
 * idle window (the workers' wake-index reads): never quiet, so quiet means no
 * other command; their figures are the mean less the idle rate. Known after
 * the first idle window.
 */
const steadyPolls: Set<string>[] = taps.map(() => new Set());
/** A command seen in at least this share of the idle window's seconds is a steady poll. */
const steadyShare = 0.9;
const countedTotal = () =>
  taps.reduce((n, t, i) => n + t.proxy.total([...monitorCommands[t.backend], ...(steadyPolls[i] ?? [])]), 0);

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + stepTimeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${stepTimeoutMs} ms`);
    await sleep(5);
  }
}

/** Waits until no tap has seen a counted command for `quietMs`. */
async function quiet(): Promise<void> {
  const deadline = Date.now() + stepTimeoutMs;
  const first = snapshot();
  let last = countedTotal();
  let lastAt = Date.now();
  while (Date.now() - lastAt < quietMs) {
    if (Date.now() > deadline) {
      const seen = snapshot().taps.map((c, i) => {
        const tap = taps[i];
        return tap ? `${tap.backend} ${tap.replica}: ${byName(difference(c, first.taps[i] ?? new Map()))}` : "";
      });
      throw new Error(`the replicas did not go quiet within ${stepTimeoutMs} ms; they sent ${seen.join("; ")}`);
    }
    await sleep(10);
    const now = countedTotal();
    if (now !== last) {
      last = now;
      lastAt = Date.now();
    }
  }
}

/** What the taps see while `work` runs and until the replicas are quiet again. */
async function windowOf(work: () => Promise<void>): Promise<Window> {
  const before = snapshot();
  const startedAt = performance.now();
  await work();
  await quiet();
  return since(before, startedAt);
}

/** Idle windows, to learn what each tap sees per millisecond when nothing runs. */
const idle: Window[] = [];
async function measureIdle(): Promise<void> {
  const before = snapshot();
  const startedAt = performance.now();
  /** Per tap and name, in how many seconds of the window it was seen. */
  const seconds = taps.map((): Counts => new Map());
  let previous = before;
  for (let second = 0; second < baselineSeconds; second++) {
    await sleep(1_000);
    const now = snapshot();
    for (const [i, counts] of now.taps.entries()) {
      const seen = seconds[i];
      if (!seen) continue;
      for (const name of difference(counts, previous.taps[i] ?? new Map()).keys()) {
        seen.set(name, (seen.get(name) ?? 0) + 1);
      }
    }
    previous = now;
  }
  idle.push(since(before, startedAt));
  if (idle.length > 1) return;
  for (const [i, tap] of taps.entries()) {
    for (const [name, n] of seconds[i] ?? []) {
      if (!isMonitor(tap.backend, name) && n >= steadyShare * baselineSeconds) steadyPolls[i]?.add(name);
    }
  }
}
const idleMs = () => idle.reduce((n, w) => n + w.ms, 0);
const idleCounts = (i: number) => sum(idle.map((w) => w.counts[i] ?? new Map()));

/** What the taps `tapIndexes` see per millisecond when idle, by name, monitoring left out. */
function idleRate(tapIndexes: number[]): Counts {
  const ms = idleMs();
  const out: Counts = new Map();
  for (const i of tapIndexes) {
    const tap = taps[i];
    if (!tap) continue;
    for (const [name, n] of split(tap.backend, idleCounts(i)).counted) out.set(name, (out.get(name) ?? 0) + n / ms);
  }
  return out;
}

interface Row {
  name: string;
  /** What the figures count, in a few words. */
  note: string;
  windows: Window[];
}
const rows: Row[] = [];

/** Runs `step` `warmups` times unmeasured, then `times` times measured, one at a time. */
async function row(
  name: string,
  note: string,
  times: number,
  step: (i: number) => Promise<{ work: () => Promise<void>; after?: () => Promise<void> }>,
): Promise<void> {
  const windows: Window[] = [];
  for (let i = 0; i < warmups + times; i++) {
    const { work, after } = await step(i);
    await quiet();
    const window = await windowOf(work);
    if (i >= warmups) windows.push(window);
    await after?.();
  }
  rows.push({ name, note, windows });
  process.stderr.write(`round-trips: ${name}: done\n`);
}

// --- the operations ----------------------------------------------------------

async function accountSettled(env: string, id: string): Promise<string> {
  let status = "connecting";
  await until(`account ${id} leaves CONNECTING`, async () => {
    status = (await accountsOf(env).findOne({ _id: id }))?.status ?? "connecting";
    return status !== "connecting";
  });
  return status;
}

/** Until the account's first handshake job has completed (its state in Redis, read through no proxy). */
async function handshakeCompleted(id: string): Promise<void> {
  await until(`handshake job of ${id} completes`, async () => {
    const state = await handshakeQueue.getJobState(handshakeJobId(id, 1));
    if (state === "failed") throw new Error(`the handshake job of ${id} failed`);
    return state === "completed";
  });
}

const redirectUri = "https://app.example/oauth/callback";

/** A new OAuth account, ACTIVE; `measure` gets the part from CompleteOAuthConnection to ACTIVE. */
async function oauthConnection() {
  const begun = await onA.accounts.unary(
    AccountService.method.startOAuthConnection,
    { integration: "crm", tenantId: "bench", redirectUri },
    admin(environment),
  );
  const { code, state } = await oauth.authorize(begun.authorizationUrl);
  let id = "";
  return {
    id: () => id,
    async work() {
      const done = await onA.accounts.unary(
        AccountService.method.completeOAuthConnection,
        { state, code },
        admin(environment),
      );
      id = done.account?.id ?? "";
      const status = await accountSettled(environment, id);
      if (status !== "active") throw new Error(`OAuth account ${id} ended ${status}, not active`);
      await handshakeCompleted(id);
    },
  };
}

try {
  await until(`the workers serve ${environment}`, () => w.servedEnvironments().includes(environment));
  await onA.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: apiKeyIntegration("keyed", apiKeys.url) },
    admin(environment),
  );
  await onA.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: oauthIntegration("crm", oauth.issuer, "bench-client-secret") },
    admin(environment),
  );
  b = await start("B api", "api");
  tokensOnB = grpcClient(TokenService, `127.0.0.1:${b.grpcPort}`);
  const verifier = tokensOnB;

  // Start-up work (first passes, index builds, first sweeps) ends before the idle window.
  await sleep(3_000);
  await measureIdle();
  const startupLogLines = logLines.length;

  // A fresh replica's first verification of a token in an environment: the known-hash filter loads too.
  const first = await onA.tokens.unary(
    TokenService.method.createToken,
    { name: "bench-first", scopes: ["accounts:read"] },
    admin(environment),
  );
  await row("VerifyToken, a fresh replica's first", "on B, its first call; caller: admin key", 1, async (i) => ({
    work: async () => {
      // The warm-ups verify other tokens: they must not be the replica's first.
      if (i < warmups) return;
      const answer = await verifier.unary(TokenService.method.verifyToken, { token: first.secret }, admin(environment));
      if (answer.status !== VerifyStatus.VALID) throw new Error(`VerifyToken answered ${answer.status}`);
    },
  }));

  const secrets: string[] = [];
  await row("CreateToken", "on A; caller: admin key", repetitions, async (i) => ({
    work: async () => {
      const made = await onA.tokens.unary(
        TokenService.method.createToken,
        { name: `bench-${i}`, scopes: ["accounts:read"] },
        admin(environment),
      );
      secrets.push(made.secret);
    },
  }));

  await row(
    "VerifyToken, cache miss",
    "on B, a token A made and B never verified; caller: admin key",
    repetitions,
    async (i) => ({
      work: async () => {
        const answer = await verifier.unary(
          TokenService.method.verifyToken,
          { token: secrets[i] ?? "" },
          admin(environment),
        );
        if (answer.status !== VerifyStatus.VALID) throw new Error(`VerifyToken answered ${answer.status}`);
      },
    }),
  );

  await row(
    "ConnectAccount -> ACTIVE",
    "API key; from the call until ACTIVE and the handshake job completed",
    repetitions,
    async (i) => {
      const key = `bench-key-${i}-${Date.now()}`;
      apiKeys.allow(key, { id: `remote-${i}`, name: `Remote ${i}` });
      return {
        work: async () => {
          const made = await onA.accounts.unary(
            AccountService.method.connectAccount,
            { integration: "keyed", tenantId: `tenant-${i}`, credential: { case: "apiKey", value: { key } } },
            admin(environment),
          );
          const id = made.account?.id ?? "";
          const status = await accountSettled(environment, id);
          if (status !== "active") throw new Error(`account ${id} ended ${status}, not active`);
          await handshakeCompleted(id);
        },
      };
    },
  );

  const oauthAccounts: string[] = [];
  await row(
    "CompleteOAuthConnection -> ACTIVE",
    "code exchange; from the call until ACTIVE and the handshake job completed; StartOAuthConnection before, uncounted",
    repetitions,
    async () => {
      const connection = await oauthConnection();
      return { work: connection.work, after: async () => void oauthAccounts.push(connection.id()) };
    },
  );

  const refreshed = oauthAccounts[0] ?? "";
  await row(
    "OAuth refresh",
    "RefreshAccountCredentials until the new token is stored and the refresh job is gone; A polls meanwhile",
    repetitions,
    async () => {
      const before = (await accountsOf(environment).findOne({ _id: refreshed }))?.credentialsVersion ?? 0;
      return {
        work: async () => {
          await onA.accounts.unary(
            AccountService.method.refreshAccountCredentials,
            { id: refreshed },
            admin(environment),
          );
          await until("the refresh job is gone", async () => {
            const state = await rotationQueue.getJobState(refreshJobId(refreshed));
            return state === "unknown" || state === "completed";
          });
        },
        after: async () => {
          const now = (await accountsOf(environment).findOne({ _id: refreshed }))?.credentialsVersion ?? 0;
          if (now !== before + 1) throw new Error(`credentials version ${before} -> ${now}, not one refresh`);
        },
      };
    },
  );

  await row(
    "CreateEnvironment -> served",
    "on A, until W serves it; deleted after each, uncounted",
    repetitions,
    async () => {
      const name = randomEnvironmentName();
      return {
        work: async () => {
          await onA.environments.unary(EnvironmentService.method.createEnvironment, {}, admin(name));
          await until(`the workers serve ${name}`, () => w.servedEnvironments().includes(name));
        },
        after: async () => {
          await onA.environments.unary(EnvironmentService.method.deleteEnvironment, {}, admin(name));
          await until(`the workers leave ${name}`, () => !w.servedEnvironments().includes(name));
          await quiet();
        },
      };
    },
  );

  await quiet();
  await measureIdle();

  // --- the figures -----------------------------------------------------------

  const figures: Record<string, Record<string, { typical: number; net: number }>> = {};
  const print = (line: string) => console.log(line);
  print(
    `${repetitions} repetitions per row after ${warmups} warm-ups, one at a time, each until done and ${quietMs} ms quiet; idle measured for ${(idleMs() / 1000).toFixed(0)} s`,
  );
  print(
    `left out by name (monitoring, connection set-up): MongoDB ${monitorCommands.mongodb.join(", ")}; Redis ${monitorCommands.redis.join(", ")}`,
  );
  print("");
  print("idle, per replica (commands per second, by name):");
  for (const [i, tap] of taps.entries()) {
    const { counted, monitor } = split(tap.backend, idleCounts(i));
    const rate = (c: Counts) =>
      [...c]
        .sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([name, n]) => `${name} ${((n * 1000) / idleMs()).toFixed(2)}`)
        .join(", ") || "none";
    const polls = [...(steadyPolls[i] ?? [])];
    print(
      `  ${tap.backend.padEnd(7)} ${tap.replica.padEnd(8)} ${((total(counted) * 1000) / idleMs()).toFixed(2).padStart(6)}/s  ${rate(counted)}   (left out: ${rate(monitor)})${polls.length ? `; steady polls: ${polls.join(", ")}` : ""}`,
    );
  }
  print("");
  print(
    "per repetition: typical [repetitions that made exactly it / all, range of totals], steady polls aside; net = mean with polls, less idle",
  );
  for (const r of rows) {
    const meanMs = r.windows.reduce((n, x) => n + x.ms, 0) / r.windows.length;
    print(`${r.name} (${r.note}), ${r.windows.length} x, ${meanMs.toFixed(0)} ms each:`);
    const entry: Record<string, { typical: number; net: number }> = {};
    for (const backend of ["mongodb", "redis"] as const) {
      const indexes = taps.flatMap((t, i) => (t.backend === backend ? [i] : []));
      const parts = indexes.flatMap((i) => {
        const tap = taps[i];
        return tap ? [{ label: tap.replica as Replica | "all", indexes: [i] }] : [];
      });
      for (const part of [...parts, { label: "all" as const, indexes }]) {
        const perRepetition = r.windows.map((x) => sum(part.indexes.map((i) => x.counts[i] ?? new Map())));
        const polls = new Set(part.indexes.flatMap((i) => [...(steadyPolls[i] ?? [])]));
        const f = figure(
          backend,
          perRepetition,
          r.windows.map((x) => x.ms),
          idleRate(part.indexes),
          (name) => polls.has(name),
        );
        if (part.label !== "all" && f.max === 0 && f.polls.size === 0 && f.monitor.size === 0) continue;
        const pollNote = f.polls.size
          ? `   (steady polls, per rep: ${[...f.polls].map(([n, p]) => `${n} ${p.mean.toFixed(1)}, idle ${p.idle.toFixed(1)}`).join("; ")})`
          : "";
        const monitor = f.monitor.size
          ? `   (left out, per rep: ${[...f.monitor].map(([n, c]) => `${n} ${c.toFixed(1)}`).join(", ")})`
          : "";
        print(
          `  ${backend.padEnd(7)} ${part.label.padEnd(8)} ${String(total(f.typical)).padStart(4)} [${f.atTypical}/${r.windows.length}, ${f.min}-${f.max}]  net ${f.net.toFixed(2).padStart(6)}  ${byName(f.typical)}${pollNote}${monitor}`,
        );
        const replica = part.label === "all" ? -1 : replicas.indexOf(part.label);
        if (backend === "mongodb" && replica >= 0 && f.max > 0) {
          const [named, ...others] = variantsOf(r.windows.map((x) => x.collections[replica] ?? new Map()));
          if (named) {
            print(`  ${"".padEnd(16)} by collection: ${byName(named.counts)} [${named.n}/${r.windows.length}]`);
            for (const other of others) print(`  ${"".padEnd(18)} ${other.n} x: ${beyond(other.counts, named.counts)}`);
          }
        }
        const key = part.label === "all" ? backend : `${backend}:${part.label.split(" ")[0]}`;
        entry[key] = { typical: total(f.typical), net: Number(f.net.toFixed(2)) };
      }
    }
    figures[r.name] = entry;
  }
  const at = (row: string, key: string) => figures[row]?.[key] ?? { typical: 0, net: 0 };
  const headline: [string, string, string, string][] = [
    ["mongodb", "connectAccountToActive", "ConnectAccount -> ACTIVE", "mongodb"],
    ["mongodb", "oauthRefresh", "OAuth refresh", "mongodb:W"],
    ["mongodb", "verifyTokenCacheMiss", "VerifyToken, cache miss", "mongodb:B"],
    ["mongodb", "createToken", "CreateToken", "mongodb"],
    ["mongodb", "createEnvironment", "CreateEnvironment -> served", "mongodb"],
    ["redis", "handshakeJob", "ConnectAccount -> ACTIVE", "redis:W"],
    ["redis", "handshakeEnqueue", "ConnectAccount -> ACTIVE", "redis:A"],
  ];
  const notes: Record<string, string> = {
    connectAccountToActive: `API ${at("ConnectAccount -> ACTIVE", "mongodb:A").typical} + worker ${at("ConnectAccount -> ACTIVE", "mongodb:W").typical}`,
    oauthRefresh: `the worker's refresh job; RefreshAccountCredentials adds ${at("OAuth refresh", "mongodb:A").typical} (net ${at("OAuth refresh", "mongodb:A").net}) on the API replica: a read, then one per 50 ms poll`,
    verifyTokenCacheMiss: `the first call of a fresh replica: ${at("VerifyToken, a fresh replica's first", "mongodb:B").typical} (its known-hash filter loads too)`,
    createEnvironment: `API ${at("CreateEnvironment -> served", "mongodb:A").typical} + worker ${at("CreateEnvironment -> served", "mongodb:W").typical} + the other API replica ${at("CreateEnvironment -> served", "mongodb:B").typical}`,
    handshakeJob: "from pick-up to completion, on the worker",
    handshakeEnqueue: "on the API replica, in ConnectAccount",
  };
  const summary: Record<string, Record<string, { typical: number; net: number }>> = { mongodb: {}, redis: {} };
  print("");
  print("summary: typical (net)");
  for (const [backend, name, row, key] of headline) {
    const figure = at(row, key);
    const group = summary[backend];
    if (group) group[name] = figure;
    print(
      `  ${backend.padEnd(7)} ${name.padEnd(24)} ${String(figure.typical).padStart(4)} (${figure.net.toFixed(2)})   ${notes[name] ?? ""}`,
    );
  }
  print(`roomkey logged after start-up: ${logLines.length - startupLogLines} warnings or errors`);
  for (const line of logLines.slice(startupLogLines, startupLogLines + 5)) print(`  ${JSON.stringify(line)}`);
  print(`round-trips: ${JSON.stringify({ ...summary, rows: figures })}`);
} finally {
  await cleanUp();
}
