/**
 * Webhook deliveries end to end, against the floor of the queue they run on,
 * in one run of one roomkey (role `all`, the compiled build as
 * bench/harness.ts explains):
 *
 * - deliveries per second: `BENCH_EVENTS` events raised straight through
 *   roomkey's webhook raiser (`token.created`, empty data; no RPC, so that
 *   what is measured is the webhook path alone: the raise's endpoint read and
 *   its delivery and event inserts, the `deliver` job and its signed POST), `BENCH_CONCURRENCY` raises in flight, to one endpoint on a
 *   local receiver (node:http on 127.0.0.1, in this process, answering 204 at
 *   once); from the first raise until the receiver has them all, and the
 *   latency of each event from its raise to its receipt.
 * - raw BullMQ on the same Redis: a Queue and a Worker with the connection
 *   settings, concurrency (20), lock and stall settings of roomkey's webhook
 *   workers and the options of its deliver jobs, a no-op processor;
 *   `BENCH_EVENTS` jobs added with `BENCH_CONCURRENCY` adds in flight, from
 *   the first add until the Worker has completed them all.
 * - MongoDB and Redis commands per delivery (and per raw job). MongoDB:
 *   roomkey's own MongoClient with command monitoring on (`monitorCommands`
 *   in its URL), each command counted by name and collection. Redis: the
 *   commands this process sends (every ioredis connection, roomkey's and
 *   BullMQ's, counted in `sendCommand`), and the server's `INFO
 *   commandstats`, which also counts what Lua scripts call and what other
 *   clients of a shared Redis send. Each count has the idle rate of a quiet
 *   window just before subtracted (pings, the environment list, BullMQ's
 *   blocking waits), so what is left is what the deliveries cost.
 *
 * roomkey runs as startRoomkey runs it (role `all`); its `inspect` seam
 * shows the bench the raiser and the MongoClient.
 * After a warm-up of each row, `BENCH_SINGLE` events are raised one at a
 * time, each once the one before arrived (the latency of a pipeline with no
 * backlog); then the rows take turns (webhooks, BullMQ, webhooks, ...), each
 * after a quiet window that measures the idle rate. The last line is
 * `webhook/bullmq ratio: <deliveries/s / jobs/s>`; a delivery is one job
 * (deliver), so 1 would be the queue's own ceiling.
 *
 *   npm run bench:webhooks        (brings up FerretDB and Redis like the tests)
 *   BENCH_EVENTS=2000 BENCH_ROUNDS=2 BENCH_CONCURRENCY=50 BENCH_SINGLE=100 npm run bench:webhooks
 *
 * BENCH_EVENTS: events (and raw jobs) per turn; BENCH_ROUNDS: turns of each
 * row; BENCH_CONCURRENCY: raises, and adds, in flight; BENCH_SINGLE: events
 * raised one at a time. Delivered events stay in the environment's database
 * (the retention is 30 days), and FerretDB 1.24 reads and writes by `_id` by
 * scanning the collection, so later turns find larger collections.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent } from "mongodb";
import type * as RoomkeyApp from "../src/app/roomkey.js";
import type { RoomkeySeams } from "../src/app/services.js";
import { parseEnvironmentName } from "../src/domain/environments/environment-name.js";
import { eventIdFor } from "../src/domain/webhooks/webhooks.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { queueName } from "../src/queue/queue-names.js";
import { deliverJobOptions, maxStalledRuns } from "../src/queue/retry-policy.js";
import { databaseNames } from "../src/storage/mongo.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import { backendUrls, capturedLogger, dropDeployment, testConfig } from "../test/helpers/server.js";

const events = Number(process.env.BENCH_EVENTS ?? 2_000);
const turns = Number(process.env.BENCH_ROUNDS ?? 2);
const inFlight = Number(process.env.BENCH_CONCURRENCY ?? 50);
const warmup = Math.min(200, events);
/** Events raised one at a time, each once the one before arrived. */
const single = Number(process.env.BENCH_SINGLE ?? 100);
/** What src/app/worker.ts gives each environment's webhook worker. */
const webhookConcurrency = 20;
/** Seconds of quiet measured before each webhook turn: the idle rate of commands subtracted from the counts. */
const idleSeconds = 3;
const root = resolve(import.meta.dirname, "..");
const environment = "bench-hooks";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const print = (line: string) => console.log(line);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

/** Counts by name; `minus` gives what was added since a copy. */
class Counts {
  readonly byName = new Map<string, number>();
  add(name: string, n = 1): void {
    this.byName.set(name, (this.byName.get(name) ?? 0) + n);
  }
  copy(): Counts {
    const copy = new Counts();
    for (const [name, n] of this.byName) copy.add(name, n);
    return copy;
  }
  minus(earlier: Counts): Counts {
    const delta = new Counts();
    for (const [name, n] of this.byName) delta.add(name, n - (earlier.byName.get(name) ?? 0));
    return delta;
  }
  /** These counts less `rate` (per second, by name) over `seconds`. */
  lessIdle(rate: Counts, seconds: number): Counts {
    const net = this.copy();
    for (const [name, perSecond] of rate.byName) net.add(name, -perSecond * seconds);
    return net;
  }
  scaled(factor: number): Counts {
    const scaled = new Counts();
    for (const [name, n] of this.byName) scaled.add(name, n * factor);
    return scaled;
  }
  plus(other: Counts): Counts {
    const sum = this.copy();
    for (const [name, n] of other.byName) sum.add(name, n);
    return sum;
  }
  total(): number {
    let sum = 0;
    for (const n of this.byName.values()) sum += n;
    return sum;
  }
  /** `total (name n, name n, ...)` per unit, the largest first, leaving out what rounds to nothing. */
  describe(per: number, top = 8): string {
    const rows = [...this.byName.entries()]
      .map(([name, n]) => [name, n / per] as const)
      // Left out: what the idle rate over-counts (blocking waits a busy worker does not make), a small negative.
      .filter(([, n]) => n >= 0.005)
      .sort((a, b) => b[1] - a[1]);
    const shown = rows
      .slice(0, top)
      .map(([name, n]) => `${name} ${n.toFixed(2)}`)
      .join(", ");
    const rest = rows.length > top ? `, ${rows.length - top} more` : "";
    return `${(this.total() / per).toFixed(2)} (${shown}${rest})`;
  }
}

// Every Redis command this process sends, by every ioredis connection (roomkey's, BullMQ's duplicates, ours).
const redisSent = new Counts();
const uncounted = new WeakSet<Redis>();
const send = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<typeof send>) {
  if (!uncounted.has(this)) redisSent.add(args[0].name.toLowerCase());
  return send.apply(this, args);
};

/** The local receiver: answers 204 at once; tells when an event's delivery arrived. */
async function startReceiver(onDelivery: (eventId: string, at: number) => void) {
  const server = createServer((req, res) => {
    const at = performance.now();
    req.resume();
    req.on("end", () => {
      res.writeHead(204).end();
      onDelivery(String(req.headers["webhook-id"] ?? ""), at);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const runStarted = performance.now();
const { logger, lines: logLines } = capturedLogger("warn");
// Command monitoring on roomkey's own MongoClient, from its URL (src/storage/mongo.ts builds the client).
const mongoUrl = new URL(backendUrls().mongodbUrl);
mongoUrl.searchParams.set("monitorCommands", "true");
const config = testConfig({
  MONGODB_URL: mongoUrl.toString(),
  ROOMKEY_METRICS_PORT: "off",
  ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
  ROOMKEY_OUTBOUND_ALLOW: "127.0.0.0/8",
});

// roomkey as startRoomkey runs it for role `all`, from the compiled build; the seam shows its clients and services.
const { startRoomkey }: typeof RoomkeyApp = await import(resolve(root, "dist/src/app/roomkey.js"));
let parts: Parameters<NonNullable<RoomkeySeams["inspect"]>>[0] | undefined;
const app = await startRoomkey(config, "all", logger, {
  inspect: (composed) => {
    parts = composed;
  },
});
if (!parts) throw new Error("startRoomkey did not show its parts");
const { clients, services } = parts;

// Every MongoDB command roomkey sends, by name and collection (`control.` for the deployment's own
// database), and the milliseconds from each one's start to its answer.
const mongoSent = new Counts();
const mongoMs = new Counts();
const controlDb = databaseNames(config.ROOMKEY_DB_PREFIX).control;
const commandNames = new Map<number, string>();
clients.mongo.on("commandStarted", (event: CommandStartedEvent) => {
  const target = event.command[event.commandName];
  const collection =
    typeof target === "string" ? ` ${event.databaseName === controlDb ? "control." : ""}${target}` : "";
  const name = `${event.commandName}${collection}`;
  mongoSent.add(name);
  commandNames.set(event.requestId, name);
});
const answered = (event: CommandSucceededEvent | CommandFailedEvent) => {
  mongoMs.add(commandNames.get(event.requestId) ?? event.commandName, event.duration);
  commandNames.delete(event.requestId);
};
clients.mongo.on("commandSucceeded", answered);
clients.mongo.on("commandFailed", answered);

const stats = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
uncounted.add(stats);
/** The server's count of every command it ran (INFO commandstats), by name. */
async function redisServerCounts(): Promise<Counts> {
  const counts = new Counts();
  for (const line of (await stats.info("commandstats")).split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match?.[1] && match[2] && match[1] !== "info") counts.add(match[1], Number(match[2]));
  }
  return counts;
}

/** What a window cost: wall time, CPU, commands. */
interface Usage {
  seconds: number;
  /** This process's CPU time (roomkey, the receiver, the raises). */
  cpuUs: number;
  /** Busy CPU time of the whole machine (every process, all cores), and all of it, in ms. */
  machineBusyMs: number;
  machineMs: number;
  mongo: Counts;
  mongoMs: Counts;
  /** Sent by this process. */
  redis: Counts;
  /** Run by the server (INFO commandstats). */
  server: Counts;
}

/** Everything counted so far; `since` gives what a window cost. */
async function snapshot(): Promise<Usage> {
  let machineBusyMs = 0;
  let machineMs = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.irq + times.idle;
    machineMs += all;
    machineBusyMs += all - times.idle;
  }
  const { user, system } = process.cpuUsage();
  return {
    seconds: performance.now() / 1000,
    cpuUs: user + system,
    machineBusyMs,
    machineMs,
    mongo: mongoSent.copy(),
    mongoMs: mongoMs.copy(),
    redis: redisSent.copy(),
    server: await redisServerCounts(),
  };
}

function since(from: Usage, to: Usage): Usage {
  return {
    seconds: to.seconds - from.seconds,
    cpuUs: to.cpuUs - from.cpuUs,
    machineBusyMs: to.machineBusyMs - from.machineBusyMs,
    machineMs: to.machineMs - from.machineMs,
    mongo: to.mongo.minus(from.mongo),
    mongoMs: to.mongoMs.minus(from.mongoMs),
    redis: to.redis.minus(from.redis),
    server: to.server.minus(from.server),
  };
}

/** The commands of a window beyond the idle rate. */
function beyondIdle(window: Usage, idle: Usage): Usage {
  const less = (counts: Counts, idleCounts: Counts) =>
    counts.lessIdle(idleCounts.scaled(1 / idle.seconds), window.seconds);
  return {
    ...window,
    mongo: less(window.mongo, idle.mongo),
    redis: less(window.redis, idle.redis),
    server: less(window.server, idle.server),
  };
}

function sum(usages: Usage[]): Usage {
  return usages.reduce((a, b) => ({
    seconds: a.seconds + b.seconds,
    cpuUs: a.cpuUs + b.cpuUs,
    machineBusyMs: a.machineBusyMs + b.machineBusyMs,
    machineMs: a.machineMs + b.machineMs,
    mongo: a.mongo.plus(b.mongo),
    mongoMs: a.mongoMs.plus(b.mongoMs),
    redis: a.redis.plus(b.redis),
    server: a.server.plus(b.server),
  }));
}

interface Turn {
  completed: number;
  elapsedMs: number;
  latencies: number[];
  usage: Usage;
  /** Webhooks: when the last raise returned. */
  raisedMs?: number;
}

const raisedAt = new Map<string, number>();
const receivedAt = new Map<string, number>();
let waitingFor: { count: number; done(): void } | undefined;
const receiver = await startReceiver((eventId, at) => {
  if (!raisedAt.has(eventId) || receivedAt.has(eventId)) return;
  receivedAt.set(eventId, at);
  if (waitingFor && receivedAt.size >= waitingFor.count) waitingFor.done();
});
/** Resolves once the receiver has `count` of the events raised since `raisedAt` was cleared. */
const receipts = (count: number) =>
  new Promise<void>((done) => {
    waitingFor = { count, done };
    if (receivedAt.size >= count) done();
  });

let serial = 0;
async function raiseOne(): Promise<void> {
  const time = new Date();
  const key = `bench/${++serial}`;
  raisedAt.set(eventIdFor(key, time), performance.now());
  await services.webhookRaiser.raise(environment, { type: "token.created", key, time, data: {} });
}

function latencies(): number[] {
  return [...receivedAt].map(([id, at]) => at - (raisedAt.get(id) ?? at));
}

/** Raises `count` events, `inFlight` at a time, until the receiver has them all and their attempts are recorded. */
async function webhookTurn(count: number, idle: Usage | undefined): Promise<Turn> {
  raisedAt.clear();
  receivedAt.clear();
  const all = receipts(count);
  const recorded = () => mongoSent.byName.get("update webhook_deliveries") ?? 0;
  const recordedBefore = recorded();
  const before = await snapshot();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      await raiseOne();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const raisedMs = performance.now() - before.seconds * 1000;
  await all;
  const elapsedMs = performance.now() - before.seconds * 1000;
  // Each delivery's attempt is recorded after its answer: the window closes once they all are.
  while (recorded() - recordedBefore < count) await sleep(20);
  await sleep(250);
  const usage = since(before, await snapshot());
  return {
    completed: receivedAt.size,
    elapsedMs,
    raisedMs,
    latencies: latencies(),
    usage: idle ? beyondIdle(usage, idle) : usage,
  };
}

/** One event at a time, each raised once the one before arrived: the latency of an idle pipeline. */
async function oneAtATime(count: number): Promise<number[]> {
  raisedAt.clear();
  receivedAt.clear();
  for (let i = 1; i <= count; i++) {
    const arrived = receipts(i);
    await raiseOne();
    await arrived;
  }
  return latencies();
}

/** Adds `count` no-op jobs, `inFlight` adds at a time, to a fresh Worker like roomkey's webhook workers. */
async function bullmqTurn(count: number, idle: Usage | undefined, turn: number): Promise<Turn> {
  // The connections roomkey's queues and workers use (src/app/clients.ts).
  const queueRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const workerRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  await new Promise<void>((ready) => queueRedis.once("ready", ready));
  const name = `bench-raw-${turn}`;
  const queue = new Queue(name, { connection: queueRedis, prefix: config.ROOMKEY_QUEUE_PREFIX });
  const addedAt = new Map<number, number>();
  const done: number[] = [];
  let finish: () => void = () => undefined;
  const all = new Promise<void>((resolveAll) => {
    finish = resolveAll;
  });
  const worker = new Worker(name, async () => undefined, {
    connection: workerRedis,
    prefix: config.ROOMKEY_QUEUE_PREFIX,
    concurrency: webhookConcurrency,
    lockDuration: config.ROOMKEY_JOB_LOCK_MS,
    stalledInterval: config.ROOMKEY_JOB_LOCK_MS,
    maxStalledCount: maxStalledRuns,
  });
  worker.on("error", (error) => process.stderr.write(`bench worker: ${error.message}\n`));
  worker.on("completed", (job: Job<{ i: number }>) => {
    done.push(performance.now() - (addedAt.get(job.data.i) ?? 0));
    if (done.length >= count) finish();
  });
  await worker.waitUntilReady();
  await sleep(200);
  const before = await snapshot();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      addedAt.set(i, performance.now());
      await queue.add("deliver", { i }, { ...deliverJobOptions, attempts: 11, jobId: `raw-${turn}-${i}` });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  await all;
  const elapsedMs = performance.now() - before.seconds * 1000;
  await sleep(250);
  const usage = since(before, await snapshot());
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  queueRedis.disconnect();
  workerRedis.disconnect();
  return { completed: done.length, elapsedMs, latencies: done, usage: idle ? beyondIdle(usage, idle) : usage };
}

async function served(name: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!app.servedEnvironments().includes(name)) {
    if (Date.now() > deadline) throw new Error(`the workers did not take up ${name} within 15 s`);
    await sleep(50);
  }
}

/** What roomkey logged at warn and above from line `from` on: each message with its count. */
function logSummary(from: number): string {
  const seen = new Map<string, number>();
  for (const line of logLines.slice(from)) {
    const key = `${line.level === 40 ? "warn" : "error"} "${line.msg}"`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  if (seen.size === 0) return "no warnings or errors";
  return [...seen.entries()].map(([key, count]) => `${count} x ${key}`).join("; ");
}

let cleaning: Promise<void> | undefined;
/** The shutdown of src/app/roomkey.ts, the receiver, and the deployment dropped; once. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await app.shutdown();
    stats.disconnect();
    await receiver.stop();
    await dropDeployment(config);
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: cleaning up\n`);
    cleanUp().finally(() => process.exit(1));
  });
}

try {
  await app.ready;
  const startupLogLines = logLines.length;
  const environments = grpcClient(EnvironmentService, `127.0.0.1:${app.grpcPort}`);
  const admin = metadataFor(environment, config.ROOMKEY_ADMIN_KEY);
  await environments.unary(EnvironmentService.method.createEnvironment, {}, admin);
  await environments.unary(
    EnvironmentService.method.createWebhookEndpoint,
    { endpoint: { url: receiver.url, eventTypes: [], enabled: true, description: "bench" } },
    admin,
  );
  environments.close();
  await served(environment);
  print(
    `webhook queue: ${config.ROOMKEY_QUEUE_PREFIX}:${queueName(parseEnvironmentName(environment), "webhook")}, one endpoint ${receiver.url}`,
  );

  // Warm-up: JIT, connection pools, the directory's cache of the environment.
  await webhookTurn(warmup, undefined);
  await bullmqTurn(warmup, undefined, 0);
  const unloaded = await oneAtATime(single);

  const hooks: Turn[] = [];
  const raw: Turn[] = [];
  const idles: Usage[] = [];
  for (let turn = 1; turn <= turns; turn++) {
    const quiet = await snapshot();
    await sleep(idleSeconds * 1000);
    const idle = since(quiet, await snapshot());
    idles.push(idle);
    hooks.push(await webhookTurn(events, idle));
    raw.push(await bullmqTurn(events, idle, turn));
  }

  const count = (ts: Turn[]) => ts.reduce((n, t) => n + t.completed, 0);
  const rate = (ts: Turn[]) => (count(ts) * 1000) / ts.reduce((sum, t) => sum + t.elapsedMs, 0);
  const at = (values: number[], p: number) => `${percentile(values, p).toFixed(1)} ms`;
  const turnRates = (ts: Turn[]) => ts.map((t) => ((t.completed * 1000) / t.elapsedMs).toFixed(0)).join("/");
  // Other processes: the database above all (FerretDB and PostgreSQL), and whatever else shares the machine.
  const busy = (u: Usage) => {
    const cores = (u.machineBusyMs / u.machineMs) * cpus().length;
    const others = cores - u.cpuUs / 1000 / (u.seconds * 1000);
    return `machine ${((100 * u.machineBusyMs) / u.machineMs).toFixed(0)}% busy (others ${(100 * others).toFixed(0)}% of a core)`;
  };
  const hookUsage = sum(hooks.map((t) => t.usage));
  const rawUsage = sum(raw.map((t) => t.usage));
  const delivered = count(hooks);
  const jobs = count(raw);
  const idle = sum(idles);
  const hookRate = rate(hooks);
  const rawRate = rate(raw);
  const hookLatencies = hooks.flatMap((t) => t.latencies);
  const rawLatencies = raw.flatMap((t) => t.latencies);
  const mongoTimes = [...hookUsage.mongo.byName.keys()]
    .filter((name) => (hookUsage.mongo.byName.get(name) ?? 0) / delivered >= 0.5)
    .map((name) => {
      const ms = (hookUsage.mongoMs.byName.get(name) ?? 0) / (hookUsage.mongo.byName.get(name) ?? 1);
      return `${name} ${ms.toFixed(1)}`;
    })
    .join(", ");

  print(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}; ${turns} turns of ${events} per row, ${inFlight} raises/adds in flight, worker concurrency ${webhookConcurrency}`,
  );
  print(
    `webhook deliveries (raise -> receipt)  ${hookRate.toFixed(0).padStart(6)} deliveries/s   p50 ${at(hookLatencies, 50)}   p99 ${at(hookLatencies, 99)}   this process ${(hookUsage.cpuUs / delivered).toFixed(0)} µs/delivery   ${busy(hookUsage)}   turns ${turnRates(hooks)}   all raised after ${hooks.map((t) => ((t.raisedMs ?? 0) / 1000).toFixed(1)).join("/")} s of ${hooks.map((t) => (t.elapsedMs / 1000).toFixed(1)).join("/")} s`,
  );
  print(
    `raw BullMQ add + process               ${rawRate.toFixed(0).padStart(6)} jobs/s         p50 ${at(rawLatencies, 50)}   p99 ${at(rawLatencies, 99)}   this process ${(rawUsage.cpuUs / jobs).toFixed(0)} µs/job   ${busy(rawUsage)}   turns ${turnRates(raw)}`,
  );
  print(
    `one event at a time (${single}), raise -> receipt: p50 ${at(unloaded, 50)}   p99 ${at(unloaded, 99)}   max ${at(unloaded, 100)}`,
  );
  print(`mongo commands per delivery:      ${hookUsage.mongo.describe(delivered, 12)}`);
  print(`mongo ms per command (mean):      ${mongoTimes}`);
  print(`redis commands sent per delivery: ${hookUsage.redis.describe(delivered)}`);
  print(`redis commands run per delivery:  ${hookUsage.server.describe(delivered)}   (INFO commandstats)`);
  print(`redis commands sent per raw job:  ${rawUsage.redis.describe(jobs)}`);
  print(`redis commands run per raw job:   ${rawUsage.server.describe(jobs)}   (INFO commandstats)`);
  print(
    `idle rate subtracted (per second): mongo ${(idle.mongo.total() / idle.seconds).toFixed(1)}, redis sent ${(idle.redis.total() / idle.seconds).toFixed(1)}, redis run ${(idle.server.total() / idle.seconds).toFixed(1)} (every client of this Redis)`,
  );
  print(`roomkey logged after start-up: ${logSummary(startupLogLines)}`);
  print(`run time: ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);
  print(`webhook/bullmq ratio: ${(hookRate / rawRate).toFixed(4)}`);
} finally {
  await cleanUp();
}
