/**
 * Integrated accounts end to end, against the floor of the queue they run on,
 * in one run of one roomkey (role `all`: API and workers in this process,
 * the compiled build as bench/harness.ts explains):
 *
 * - connects per second: ConnectAccount (API key) until ACTIVE is seen on a
 *   WatchAccounts stream, with 1 environment busy and with 3 busy at once
 *   (each with its own watch and `BENCH_CONCURRENCY` connects in flight;
 *   per-environment rates summed), and the latency of connect -> ACTIVE seen.
 *   The callers and the API key provider (test/helpers/api-key-provider.ts)
 *   run in a separate process (bench/connect-load.ts), as in bench/load.ts.
 * - OAuth refreshes per second: `BENCH_OAUTH_ACCOUNTS` active OAuth accounts
 *   whose access tokens expire within the margin, written straight into the
 *   environment's accounts collection (sealed as roomkey seals them, each
 *   with a live refresh token the provider issued); one `sweep-accounts` job
 *   on the rotation queue, then the time until every account has a new
 *   credentials version. The provider (test/helpers/oauth-provider.ts,
 *   oauth2-mock-server with rotating refresh tokens) runs in that other
 *   process; issuing the refresh tokens measures it alone.
 * - raw BullMQ on the same Redis: a Queue and a Worker with a no-op
 *   processor, the concurrency of roomkey's handshake workers and the options
 *   of its handshake jobs, `BENCH_CONCURRENCY` jobs in flight, each waited
 *   for until processed.
 *
 * The rows take turns (connect 1, connect 3, BullMQ, connect 1, ...) as in
 * bench/harness.ts. The last line is `connect/bullmq ratio: <connects/s with
 * 1 environment / jobs/s>`.
 *
 *   npm run bench:accounts        (brings up FerretDB and Redis like the tests)
 *   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CONCURRENCY=50 BENCH_OAUTH_ACCOUNTS=10000 npm run bench:accounts
 *
 * BENCH_SECONDS: seconds measured per row, spread over BENCH_ROUNDS turns
 * (defaults 10 and 5, as bench:tokens; each row also warms up for 2 s once).
 * BENCH_CONCURRENCY: connects in flight per environment, and BullMQ jobs in
 * flight (default 50). BENCH_OAUTH_ACCOUNTS: accounts refreshed (default
 * 10,000; one sweep lists at most 10,000, so more take further sweeps).
 * BENCH_REFRESH_SECONDS: how long the refresh row may run (default 75); if
 * it stops before every account is refreshed, it prints the rate so far and
 * how long all would take. On FerretDB 1.24 a read or write by _id scans the
 * whole collection, so all 10,000 take several minutes there: set
 * BENCH_REFRESH_SECONDS=900 to see them through.
 */
import { type ChildProcess, fork } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { masterKeysOf } from "../src/config.js";
import { sealCredentials } from "../src/domain/accounts/account-common.js";
import type { Account } from "../src/domain/accounts/accounts.js";
import { createKeyring, type WrappedDataKey } from "../src/domain/crypto/envelope.js";
import { parseEnvironmentName } from "../src/domain/environments/environment-name.js";
import { settingDefaults } from "../src/domain/environments/environments.js";
import { newId } from "../src/domain/ids.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../src/gen/roomkey/v1/token_service_pb.js";
import type * as Main from "../src/main.js";
import { queueName } from "../src/queue/queue-names.js";
import { handshakeAttempts } from "../src/queue/retry-policy.js";
import { createAccountRepository } from "../src/storage/account-repository.js";
import { databaseNames } from "../src/storage/mongo.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../test/helpers/integrations.js";
import { capturedLogger, dropDeployment, testConfig } from "../test/helpers/server.js";
import type { ConnectResult, ConnectTarget, LoadReply, LoadRequest } from "./connect-load.js";
import { rounds, seconds } from "./harness.js";

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 50);
const oauthAccounts = Number(process.env.BENCH_OAUTH_ACCOUNTS ?? 10_000);
const warmupSeconds = 2;
/** The refresh row stops after this long, and then says how far it got and how long all would take. */
const refreshSeconds = Number(process.env.BENCH_REFRESH_SECONDS ?? 75);
/** What src/main.ts gives roomkey's handshake and rotation workers. */
const workerConcurrency = 10;
const root = resolve(import.meta.dirname, "..");

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

/** CPU time of the whole machine, all cores, in ms: busy and in all. */
function machineCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.irq + times.idle;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

/** The share of the machine's CPU time (0-1) that was busy since `from`. */
function machineBusySince(from: { busy: number; total: number }): number {
  const now = machineCpu();
  return (now.busy - from.busy) / Math.max(1, now.total - from.total);
}

const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** The other process, and one request to it at a time. */
async function startLoad() {
  const child: ChildProcess = fork(resolve(root, "bench/connect-load.ts"), [], {
    cwd: root,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let pending: { resolve(reply: LoadReply): void; reject(error: Error): void } | undefined;
  const ready = new Promise<Extract<LoadReply, { kind: "ready" }>>((resolveReady, rejectReady) => {
    child.once("exit", (code) => rejectReady(new Error(`bench/connect-load.ts exited with ${code}`)));
    child.on("message", (reply: LoadReply) => {
      if (reply.kind === "ready") resolveReady(reply);
      else if (reply.kind === "error" && !pending) process.stderr.write(`connect-load: ${reply.message}\n`);
      else if (reply.kind === "error") pending?.reject(new Error(`connect-load: ${reply.message}`));
      else pending?.resolve(reply);
      if (reply.kind !== "ready") pending = undefined;
    });
  });
  const ask = <K extends LoadRequest["kind"]>(request: Extract<LoadRequest, { kind: K }>) =>
    new Promise<Extract<LoadReply, { kind: K }>>((resolveReply, rejectReply) => {
      pending = { resolve: (reply) => resolveReply(reply as Extract<LoadReply, { kind: K }>), reject: rejectReply };
      child.send(request);
    });
  return { child, ready: await ready, ask };
}

const runStarted = performance.now();
const load = await startLoad();
const { logger, lines: logLines } = capturedLogger("warn");
const config = testConfig({
  // The bench starts the refresh sweep itself: the scheduled one stays out of the way.
  ROOMKEY_REFRESH_SWEEP_MS: "3600000",
});
const main: typeof Main = await import(resolve(root, "dist/src/main.js"));
const app = await main.startRoomkey(config, "all", logger);
const mongo = new MongoClient(config.MONGODB_URL);
const queueRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const workerRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const address = `127.0.0.1:${app.grpcPort}`;
const environments = grpcClient(EnvironmentService, address);
const tokens = grpcClient(TokenService, address);
const admin = (environment: string) => metadataFor(environment, config.ROOMKEY_ADMIN_KEY);
const print = (line: string) => console.log(line);

async function served(environment: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!app.servedEnvironments().includes(environment)) {
    if (Date.now() > deadline) throw new Error(`the workers did not take up ${environment} within 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Row {
  name: string;
  /** One turn: what was completed, per environment, and the latencies. */
  turn(seconds: number): Promise<Turn>;
}
interface Turn {
  parts: { name: string; completed: number; elapsedMs: number }[];
  latencies: number[];
  errors: Record<string, number>;
  serverCpuUs: number;
  clientCpuUs: number;
  /** Share of the whole machine's CPU time that was busy (every process, all cores). */
  machineBusy: number;
}

function connectRow(name: string, targets: ConnectTarget[]): Row {
  return {
    name,
    async turn(turnSeconds) {
      const cpu = cpuNow();
      const machine = machineCpu();
      const { result } = await load.ask<"connect">({
        kind: "connect",
        address,
        channelPrefix: config.ROOMKEY_QUEUE_PREFIX,
        targets,
        seconds: turnSeconds,
        concurrency,
      });
      return fromConnect(result, cpuNow() - cpu, machineBusySince(machine));
    },
  };
}

function fromConnect(result: ConnectResult, serverCpuUs: number, machineBusy: number): Turn {
  return {
    parts: result.environments.map((e) => ({ name: e.environment, completed: e.completed, elapsedMs: e.elapsedMs })),
    latencies: result.latencies,
    errors: result.errors,
    serverCpuUs,
    clientCpuUs: result.cpuUs,
    machineBusy,
  };
}

/** Raw BullMQ: add a job as roomkey adds a handshake, wait until a no-op worker processed it. */
function bullmqRow(): Row & { close(): Promise<void> } {
  const name = "bench-raw";
  const queue = new Queue(name, { connection: queueRedis, prefix: config.ROOMKEY_QUEUE_PREFIX });
  const waiting = new Map<string, (at: number) => void>();
  const worker = new Worker(name, async () => undefined, {
    connection: workerRedis,
    prefix: config.ROOMKEY_QUEUE_PREFIX,
    concurrency: workerConcurrency,
  });
  worker.on("error", (error) => process.stderr.write(`bench worker: ${error.message}\n`));
  // Each waiter is in place before its job is added: a job done before add() answers is still seen.
  worker.on("completed", (job) => waiting.get(job.id ?? "")?.(performance.now()));
  let made = 0;
  return {
    name: `BullMQ add+process (no-op, concurrency ${workerConcurrency})`,
    async turn(turnSeconds) {
      const cpu = cpuNow();
      const machine = machineCpu();
      const latencies: number[] = [];
      let completed = 0;
      const started = performance.now();
      const deadline = started + turnSeconds * 1000;
      const lane = async () => {
        while (performance.now() < deadline) {
          const n = made++;
          const jobId = `connect-raw${n}-1`;
          const callStarted = performance.now();
          const done = new Promise<number>((resolveDone) => waiting.set(jobId, resolveDone));
          await queue.add(
            "connect",
            { accountId: `raw${n}`, attempt: 1 },
            {
              jobId,
              attempts: handshakeAttempts,
              removeOnComplete: { age: 3_600, count: 1_000 },
              removeOnFail: { age: 7 * 86_400, count: 10_000 },
            },
          );
          const at = await done;
          waiting.delete(jobId);
          completed++;
          latencies.push(at - callStarted);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, lane));
      const elapsedMs = performance.now() - started;
      return {
        parts: [{ name, completed, elapsedMs }],
        latencies,
        errors: {},
        serverCpuUs: cpuNow() - cpu,
        clientCpuUs: 0,
        machineBusy: machineBusySince(machine),
      };
    },
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}

interface RowFigures {
  name: string;
  rate: number;
  perPart: Record<string, number>;
  p50: number;
  p99: number;
  serverCpuUs: number;
  clientCpuUs: number;
  errors: Record<string, number>;
  machineBusy: number;
  /** The rate of each turn, in order: a drift shows what the growing collections cost. */
  turnRates: number[];
}

/** Rows in turns; a rate per part (environment) over all turns, summed; latency percentiles over all calls. */
async function measure(rows: Row[]): Promise<RowFigures[]> {
  const turns = rows.map(() => [] as Turn[]);
  for (let round = 0; round < rounds; round++) {
    for (const [i, row] of rows.entries()) {
      if (round === 0) await row.turn(warmupSeconds);
      turns[i]?.push(await row.turn(seconds / rounds));
    }
  }
  return rows.map((row, i) => {
    const all = turns[i] ?? [];
    const perPart: Record<string, number> = {};
    const sums = new Map<string, { completed: number; elapsedMs: number }>();
    for (const turn of all) {
      for (const part of turn.parts) {
        const sum = sums.get(part.name) ?? { completed: 0, elapsedMs: 0 };
        sum.completed += part.completed;
        sum.elapsedMs += part.elapsedMs;
        sums.set(part.name, sum);
      }
    }
    for (const [name, sum] of sums) perPart[name] = (sum.completed * 1000) / sum.elapsedMs;
    const completed = [...sums.values()].reduce((n, s) => n + s.completed, 0);
    const latencies = all.flatMap((t) => t.latencies);
    const errors: Record<string, number> = {};
    for (const turn of all) for (const [what, n] of Object.entries(turn.errors)) errors[what] = (errors[what] ?? 0) + n;
    return {
      name: row.name,
      rate: Object.values(perPart).reduce((s, r) => s + r, 0),
      perPart,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      serverCpuUs: all.reduce((s, t) => s + t.serverCpuUs, 0) / completed,
      clientCpuUs: all.reduce((s, t) => s + t.clientCpuUs, 0) / completed,
      errors,
      machineBusy: all.reduce((s, t) => s + t.machineBusy, 0) / Math.max(1, all.length),
      turnRates: all.map((t) => t.parts.reduce((r, p) => r + (p.completed * 1000) / p.elapsedMs, 0)),
    };
  });
}

/** The provider alone: `count` refresh tokens issued (password grant, as costly as a refresh), `inFlight` at a time. */
async function issueRefreshTokens(count: number, inFlight: number): Promise<{ tokens: string[]; perSecond: number }> {
  const tokensOut: string[] = [];
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      const n = next++;
      const response = await fetch(`${load.ready.issuer}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "password",
          username: `user-${n}`,
          password: "bench",
          client_id: "roomkey-bench",
          scope: "openid contacts.read",
        }),
      });
      const body = (await response.json()) as { refresh_token?: string };
      if (!body.refresh_token) throw new Error(`the provider issued no refresh token (status ${response.status})`);
      tokensOut.push(body.refresh_token);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { tokens: tokensOut, perSecond: (count * 1000) / (performance.now() - started) };
}

/** The refresh row: accounts written directly, one sweep, until every one has new credentials. */
async function refreshRow(): Promise<void> {
  const environment = "refresh";
  await environments.unary(EnvironmentService.method.createEnvironment, {}, admin(environment));
  await served(environment);
  await environments.unary(
    EnvironmentService.method.putIntegration,
    {
      integration: oauthIntegration("crm", load.ready.issuer, "client-secret-1"),
    },
    admin(environment),
  );

  const issued = await issueRefreshTokens(oauthAccounts, workerConcurrency);
  const names = databaseNames(config.ROOMKEY_DB_PREFIX);
  const record = await mongo
    .db(names.control)
    .collection<{ _id: string; dataKey: WrappedDataKey }>("environments")
    .findOne({ _id: environment });
  if (!record) throw new Error(`no record of environment ${environment}`);
  const key = createKeyring(masterKeysOf(config)).unwrap(environment, record.dataKey);
  const accounts = mongo
    .db(names.environment(environment))
    .collection<Omit<Account, "id"> & { _id: string }>("accounts");
  const now = Date.now();
  const setupStarted = performance.now();
  let probeId = "";
  for (let from = 0; from < issued.tokens.length; from += 500) {
    const docs = issued.tokens.slice(from, from + 500).map((refreshToken, i) => {
      const created = new Date(now - 3_600_000);
      const id = newId("acc", created);
      const { id: _id, ...rest }: Account = {
        id,
        integration: "crm",
        tenantId: `tenant-${(from + i) % 1000}`,
        labels: {},
        status: "active",
        statusReason: "",
        authType: "oauth2",
        remoteId: "johndoe",
        remoteName: "John Doe",
        createTime: created,
        updateTime: created,
        // Within the environment's refresh margin (10 minutes): due now.
        credentialsExpireTime: new Date(now + 5 * 60_000),
        lastRefreshTime: created,
        tokenType: "Bearer",
        scopes: ["openid", "contacts.read"],
        credentials: sealCredentials(key, environment, id, {
          access_token: `bench-access-${from + i}`,
          refresh_token: refreshToken,
        }),
        credentialsVersion: 1,
        handshake: { attempt: 1, startTime: created },
        version: 1,
      };
      probeId = id;
      return { _id: id, ...rest };
    });
    await accounts.insertMany(docs, { ordered: false });
  }
  const setupS = (performance.now() - setupStarted) / 1000;
  // The sweep's own query, alone on an idle database: how much of the sweep's time is reading.
  const listStarted = performance.now();
  const due = await createAccountRepository(
    { db: () => mongo.db(names.environment(environment)) },
    // The sweep's query writes nothing, so it needs no incarnation check.
    { currentIncarnation: () => Promise.reject(new Error("not used by the refresh sweep's query")) },
  ).listDueForRefresh(
    environment,
    new Date(Date.now() + settingDefaults.oauthRefreshMarginMs),
    new Date(Date.now() - settingDefaults.refreshTokenKeepaliveMs),
  );
  const listS = (performance.now() - listStarted) / 1000;

  const rotation = new Queue(queueName(parseEnvironmentName(environment), "rotation"), {
    connection: queueRedis,
    prefix: config.ROOMKEY_QUEUE_PREFIX,
  });
  const before = await load.ask<"usage">({ kind: "usage" });
  const cpu = cpuNow();
  const machine = machineCpu();
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const started = Date.now();
  // The sweep runs in the worker's process (workers/sweep-clock.ts); its result says how many it queued.
  const runSweep = () => {
    const run: { queued?: number; doneAt?: number } = {};
    app.runSweep(environment, "sweep-accounts").then(
      (result) => {
        run.queued = (result as { queued?: number } | null)?.queued ?? 0;
        run.doneAt = Date.now();
      },
      (error: unknown) => process.stderr.write(`sweep failed: ${String(error)}\n`),
    );
    return run;
  };
  let sweep = runSweep();
  let sweeps = 1;
  let sweepDoneMs: number | undefined;
  let refreshed = 0;
  let notActive = 0;
  let finished = false;
  // Redis is polled, not the database: counting 10,000 documents would weigh on FerretDB while it works.
  const lookups: number[] = [];
  for (let poll = 1; Date.now() - started < refreshSeconds * 1000; poll++) {
    await new Promise((r) => setTimeout(r, 250));
    if (poll % 4 === 0) {
      // What one read by _id costs FerretDB now, as each refresh reads and writes its account by _id.
      const lookupStarted = performance.now();
      await accounts.findOne({ _id: probeId });
      lookups.push(performance.now() - lookupStarted);
    }
    if (sweep.doneAt === undefined) continue;
    sweepDoneMs ??= sweep.doneAt - started;
    // Refreshes still to run.
    const counts = await rotation.getJobCounts("waiting", "active", "prioritized");
    const retrying = (await rotation.getJobs(["delayed"])).filter((j) => j.name === "refresh-account").length;
    if (retrying > 0 || Object.values(counts).some((n) => n > 0)) continue;
    [refreshed, notActive] = await Promise.all([
      accounts.countDocuments({ credentialsVersion: { $gt: 1 } }),
      accounts.countDocuments({ status: { $ne: "active" } }),
    ]);
    const queued = sweep.queued ?? 0;
    finished = refreshed + notActive >= oauthAccounts;
    if (finished || queued === 0) break;
    // One sweep lists at most 10,000 accounts: the next one lists the rest.
    sweep = runSweep();
    sweeps++;
  }
  const serverCpuUs = cpuNow() - cpu;
  const machineBusy = machineBusySince(machine);
  loopDelay.disable();
  const after = await load.ask<"usage">({ kind: "usage" });
  const measuredMs = Date.now() - started;
  if (!finished) {
    // What is left would keep the workers and the database busy through shutdown; active jobs finish.
    await rotation.pause();
    [refreshed, notActive] = await Promise.all([
      accounts.countDocuments({ credentialsVersion: { $gt: 1 } }),
      accounts.countDocuments({ status: { $ne: "active" } }),
    ]);
  }
  const last = await accounts
    .find({ credentialsVersion: { $gt: 1 } })
    .sort({ lastRefreshTime: -1 })
    .limit(1)
    .next();
  const elapsedMs = (last?.lastRefreshTime?.getTime() ?? Date.now()) - started;
  await rotation.close();

  const rate = (refreshed * 1000) / elapsedMs;
  const providerCalls = after.refreshCalls - before.refreshCalls;
  const providerCpu = (after.cpuUs - before.cpuUs) / (measuredMs * 10);
  const serverCpu = serverCpuUs / (measuredMs * 10);
  const ofAlone = `${(rate / issued.perSecond).toFixed(2)} of what it serves alone`;
  const bound =
    providerCpu >= 85 || rate >= 0.8 * issued.perSecond
      ? `the OAuth mock provider is the bottleneck (${ofAlone})`
      : serverCpu >= 85
        ? `roomkey's CPU is the bottleneck, not the provider (${ofAlone})`
        : machineBusy >= 0.9
          ? `the machine's CPUs are full, mostly with other processes (the database), not roomkey or the provider (${ofAlone})`
          : `neither is busy, so the refreshes wait on the database or Redis, not on the provider (${ofAlone})`;
  const others = machineBusy * cpus().length * 100 - serverCpu - providerCpu;
  print(
    `OAuth provider alone                  ${issued.perSecond.toFixed(0).padStart(7)} tokens/s   (oauth2-mock-server, password grant, ${workerConcurrency} in flight; ${oauthAccounts} accounts written in ${setupS.toFixed(1)} s)`,
  );
  print(
    `OAuth refresh, ${oauthAccounts} accounts      ${rate.toFixed(0).padStart(7)} refreshes/s   ${refreshed} refreshed in ${(elapsedMs / 1000).toFixed(1)} s (${sweeps} sweep${sweeps > 1 ? "s" : ""}, the first queued its refreshes in ${((sweepDoneMs ?? elapsedMs) / 1000).toFixed(1)} s; its query alone lists ${due.length} in ${listS.toFixed(1)} s), not active ${notActive}, provider refresh calls ${providerCalls}${finished ? "" : `; stopped at BENCH_REFRESH_SECONDS=${refreshSeconds}: ${rate > 0 ? `all ${oauthAccounts} would take about ${Math.round(oauthAccounts / rate)} s` : "none refreshed"}`}`,
  );
  print(
    `OAuth refresh, a read by _id meanwhile: p50 ${percentile(lookups, 50).toFixed(1)} ms, max ${percentile(lookups, 100).toFixed(1)} ms (${lookups.length} reads of one account)`,
  );
  print(
    `OAuth refresh CPU: roomkey ${serverCpu.toFixed(0)}% of a core (${(serverCpuUs / Math.max(1, refreshed)).toFixed(0)} µs/refresh), provider ${providerCpu.toFixed(0)}%, other processes ${others.toFixed(0)}% (machine ${(machineBusy * 100).toFixed(0)}% busy); roomkey's event loop late by p50 ${(loopDelay.percentile(50) / 1e6 - 1).toFixed(1)} ms, max ${(loopDelay.max / 1e6 - 1).toFixed(0)} ms: ${bound}`,
  );
}

/** What roomkey logged at warn and above from line `from` on: each message with its count and first details. */
function logSummary(from: number): string {
  const seen = new Map<string, { count: number; first: Record<string, unknown> }>();
  for (const line of logLines.slice(from) as unknown as Record<string, unknown>[]) {
    const key = `${line.level === 40 ? "warn" : "error"} "${String(line.msg)}"`;
    const entry = seen.get(key);
    if (entry) entry.count++;
    else seen.set(key, { count: 1, first: line });
  }
  if (seen.size === 0) return "no warnings or errors";
  return [...seen.entries()]
    .map(([key, { count, first }]) => {
      const err = (first.err as { message?: string } | undefined)?.message;
      const details = [first.probe, first.environment, first.queue, err].filter((d) => d !== undefined).join(", ");
      return `${count} x ${key}${details ? ` (${details})` : ""}`;
    })
    .join("; ");
}

let bullmq: ReturnType<typeof bullmqRow> | undefined;
let cleaning: Promise<void> | undefined;
/** Stops everything this run started and drops its deployment, once (at the end, or on Ctrl-C). */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await bullmq?.close();
    await load.ask<"stop">({ kind: "stop" }).catch(() => undefined);
    environments.close();
    tokens.close();
    await app.shutdown();
    await mongo.close();
    queueRedis.disconnect();
    workerRedis.disconnect();
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
  // Start-up warns while the first health probe runs before MongoDB is connected: not what is measured.
  const startupLogLines = logLines.length;
  const connectEnvironments = ["development", "staging", "production"];
  const targets: ConnectTarget[] = [];
  for (const environment of connectEnvironments) {
    await served(environment);
    await environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: apiKeyIntegration("keyed", load.ready.apiKeyUrl),
      },
      admin(environment),
    );
    const made = await tokens.unary(
      TokenService.method.createToken,
      { name: "bench-connect", scopes: ["accounts:read", "accounts:write"] },
      admin(environment),
    );
    targets.push({ environment, secret: made.secret });
  }
  bullmq = bullmqRow();
  const rows = await measure([
    connectRow("connect, 1 environment", targets.slice(1, 2)),
    connectRow("connect, 3 environments", targets),
    bullmq,
  ]);
  print(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ${seconds} s per row in ${rounds} turns, ${concurrency} in flight per environment`,
  );
  for (const row of rows) {
    const unit = row.name.startsWith("BullMQ") ? "jobs/s" : "connects/s";
    const parts =
      Object.keys(row.perPart).length > 1
        ? ` (${Object.entries(row.perPart)
            .map(([name, r]) => `${name} ${r.toFixed(0)}`)
            .join(" + ")})`
        : "";
    const client = row.clientCpuUs > 0 ? `   callers+provider ${row.clientCpuUs.toFixed(0)} µs/connect` : "";
    print(
      `${row.name.padEnd(37)} ${row.rate.toFixed(0).padStart(7)} ${unit}${parts}   p50 ${row.p50.toFixed(1)} ms   p99 ${row.p99.toFixed(1)} ms   this process ${row.serverCpuUs.toFixed(0)} µs/${unit === "jobs/s" ? "job" : "connect"}${client}   machine ${(row.machineBusy * 100).toFixed(0)}% busy   turns ${row.turnRates.map((r) => r.toFixed(0)).join("/")}   errors ${JSON.stringify(row.errors)}`,
    );
  }
  await bullmq.close();
  bullmq = undefined;

  await refreshRow();

  const [one, three, raw] = rows.map((r) => r.rate);
  print(`roomkey logged after start-up: ${logSummary(startupLogLines)}`);
  print(`run time: ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);
  print(`connect-3/connect-1 ratio: ${((three ?? 0) / (one ?? 1)).toFixed(3)}`);
  print(`connect/bullmq ratio: ${((one ?? 0) / (raw ?? 1)).toFixed(3)}`);
} finally {
  await cleanUp();
}
