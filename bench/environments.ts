/**
 * What an environment costs: roomkey started with 3, 30, 100 and 300
 * environments (BENCH_SIZES to change), an API process and a worker process
 * on a Redis of the bench's own, so that every connection and command on it
 * is roomkey's. For each size it prints the processes' RSS, their Redis
 * connections, Redis commands per second while idle, the start-up time to
 * SERVING with every environment served, and the time from a job queued to
 * the job started (p50, p99) with one job queued in every environment at
 * once; then the same per environment, and the issue's targets at the
 * largest size.
 *
 *   npm run bench:environments
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import type { Config } from "../src/config.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { killSpawned, type RoomkeyProcess, spawnRoomkey } from "../test/helpers/child-process.js";
import { type GrpcClient, grpcClient, isServing, metadataFor } from "../test/helpers/clients.js";
import { randomEnvironmentName } from "../test/helpers/names.js";
import { freePort, ownRedis } from "../test/helpers/own-services.js";
import { testQueue } from "../test/helpers/queues.js";
import { dropDeployment, testConfig } from "../test/helpers/server.js";

const sizes = (process.env.BENCH_SIZES ?? "3,30,100,300").split(",").map(Number);
/** Idle window over which Redis commands are counted. */
const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 10);
/** Environments created at once through the API. */
const createConcurrency = 8;

interface Figures {
  environments: number;
  workerRssMb: number;
  apiRssMb: number;
  workerConnections: number;
  apiConnections: number;
  idleCommandsPerSecond: number;
  /** CPU seconds per second while idle (0.05 = 5% of one core): the sweeps, heartbeats and polls. */
  workerIdleCpu: number;
  apiIdleCpu: number;
  apiStartMs: number;
  workerStartMs: number;
  jobStartP50Ms: number;
  jobStartP99Ms: number;
  /** Worker connections while the one job per environment ran. */
  peakWorkerConnections: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

/** CPU seconds a process has used so far (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMb(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kb / 1024;
}

/** Established TCP connections of each process to the Redis port, from `ss` (root sees every process). */
function connectionsByPid(redisPort: number): Map<number, number> {
  const out = execFileSync("ss", ["-tnpH", "state", "established", `( dport = :${redisPort} )`], { encoding: "utf8" });
  const counts = new Map<number, number>();
  for (const match of out.matchAll(/pid=(\d+)/g)) {
    const pid = Number(match[1]);
    counts.set(pid, (counts.get(pid) ?? 0) + 1);
  }
  return counts;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** CreateEnvironment as a careful caller makes it: an UNAVAILABLE answer (MongoDB slow to answer a ping) is retried. */
async function createEnvironment(client: GrpcClient<typeof EnvironmentService>, name: string, adminKey: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.unary(EnvironmentService.method.createEnvironment, {}, metadataFor(name, adminKey));
    } catch (error) {
      if ((error as { code?: number }).code !== status.UNAVAILABLE || attempt >= 10) throw error;
      await sleep(500 * attempt);
    }
  }
}

async function startApi(config: Config): Promise<{ process: RoomkeyProcess; startMs: number }> {
  const started = Date.now();
  const api = spawnRoomkey(config, "api", { compiled: true });
  await until(() => isServing(`127.0.0.1:${config.ROOMKEY_GRPC_PORT}`), 60_000, "the API serving");
  return { process: api, startMs: Date.now() - started };
}

async function measure(size: number): Promise<Figures> {
  const redis = await ownRedis();
  const redisPort = Number(new URL(redis.url).port);
  const config = testConfig({
    // BENCH_CONFIG='{"ROOMKEY_HANDSHAKE_SWEEP_MS":"600000"}', say, to see what a setting changes.
    ...(JSON.parse(process.env.BENCH_CONFIG ?? "{}") as Record<string, string>),
    REDIS_URL: redis.url,
    ROOMKEY_GRPC_PORT: String(await freePort()),
    ROOMKEY_HTTP_PORT: String(await freePort()),
    ROOMKEY_METRICS_PORT: "off",
  });
  const probe = new Redis(redis.url);
  try {
    // The environments, made through the API as a caller would.
    let api = await startApi(config);
    const client = grpcClient(EnvironmentService, `127.0.0.1:${config.ROOMKEY_GRPC_PORT}`);
    const names = ["development", "staging", "production"];
    const extra = Array.from({ length: Math.max(0, size - names.length) }, () => randomEnvironmentName());
    for (let i = 0; i < extra.length; i += createConcurrency) {
      await Promise.all(
        extra.slice(i, i + createConcurrency).map((name) => createEnvironment(client, name, config.ROOMKEY_ADMIN_KEY)),
      );
    }
    client.close();
    names.push(...extra);
    api.process.child.kill("SIGTERM");
    await api.process.exited;

    // Start-up with every environment there: the API to SERVING, the worker to serving each of them.
    const workerStarted = Date.now();
    const worker = spawnRoomkey(config, "worker", { compiled: true });
    api = await startApi(config);
    await until(
      () => worker.lines.filter((l) => l.msg === "serving environment").length >= size,
      120_000,
      "the worker serving every environment",
    );
    const workerStartMs = Date.now() - workerStarted;

    // Idle: past the workers' idle time, then counted.
    await sleep(12_000);
    const info = async () => Number(/total_commands_processed:(\d+)/.exec(await probe.info("stats"))?.[1]);
    const workerPid = worker.child.pid ?? 0;
    const apiPid = api.process.child.pid ?? 0;
    const before = await info();
    const cpuBefore = [cpuSeconds(workerPid), cpuSeconds(apiPid)];
    await sleep(idleSeconds * 1000);
    // Less this probe's own two INFO commands.
    const idleCommandsPerSecond = ((await info()) - before - 1) / idleSeconds;
    const workerIdleCpu = (cpuSeconds(workerPid) - (cpuBefore[0] ?? 0)) / idleSeconds;
    const apiIdleCpu = (cpuSeconds(apiPid) - (cpuBefore[1] ?? 0)) / idleSeconds;
    const connections = connectionsByPid(redisPort);
    const workerRssMb = rssMb(workerPid);
    const apiRssMb = rssMb(apiPid);

    // One job in each environment at once: queued to started.
    const queues = names.map((name) => testQueue(probe, config.ROOMKEY_QUEUE_PREFIX, name, "handshake"));
    const jobs: { id?: string; timestamp: number }[] = [];
    for (const queue of queues) jobs.push(await queue.addAndWake("sweep-connecting", {}));
    let peakWorkerConnections = 0;
    const started: number[] = [];
    await until(
      async () => {
        peakWorkerConnections = Math.max(peakWorkerConnections, connectionsByPid(redisPort).get(workerPid) ?? 0);
        started.length = 0;
        for (const [i, job] of jobs.entries()) {
          const processedOn = (await queues[i]?.getJob(job.id ?? ""))?.processedOn;
          if (processedOn === undefined) return false;
          started.push(processedOn - job.timestamp);
        }
        return true;
      },
      120_000,
      "every job started",
    );
    started.sort((a, b) => a - b);
    await Promise.all(queues.map((q) => q.close()));
    worker.child.kill("SIGTERM");
    api.process.child.kill("SIGTERM");
    await Promise.all([worker.exited, api.process.exited]);
    return {
      environments: size,
      workerRssMb,
      apiRssMb,
      workerConnections: connections.get(workerPid) ?? 0,
      apiConnections: connections.get(apiPid) ?? 0,
      idleCommandsPerSecond,
      workerIdleCpu,
      apiIdleCpu,
      apiStartMs: api.startMs,
      workerStartMs,
      jobStartP50Ms: percentile(started, 50),
      jobStartP99Ms: percentile(started, 99),
      peakWorkerConnections,
    };
  } finally {
    probe.disconnect();
    await killSpawned();
    await dropDeployment(config);
    await redis.dispose();
  }
}

const results: Figures[] = [];
for (const size of sizes) {
  const figures = await measure(size);
  results.push(figures);
  console.log(JSON.stringify(figures));
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
console.log("");
console.log(
  "envs | worker RSS MB | API RSS MB | Redis conns worker/API (peak worker) | idle Redis cmd/s | idle CPU worker/API | start API/worker ms | job start p50/p99 ms",
);
for (const r of results) {
  console.log(
    `${r.environments} | ${f1(r.workerRssMb)} | ${f1(r.apiRssMb)} | ${r.workerConnections}/${r.apiConnections} (${r.peakWorkerConnections}) | ${f1(r.idleCommandsPerSecond)} | ${Math.round(r.workerIdleCpu * 100)}%/${Math.round(r.apiIdleCpu * 100)}% | ${r.apiStartMs}/${r.workerStartMs} | ${r.jobStartP50Ms}/${r.jobStartP99Ms}`,
  );
}
const base = results[0];
console.log("");
console.log("per environment (RSS: growth over the smallest size, per environment added):");
for (const r of results.slice(1)) {
  if (!base) break;
  const added = r.environments - base.environments;
  console.log(
    `${r.environments} | worker ${f2(((r.workerRssMb - base.workerRssMb) * 1024) / added)} KB, API ${f2(((r.apiRssMb - base.apiRssMb) * 1024) / added)} KB RSS per env | ${f2(r.workerConnections / r.environments)} worker conns per env (peak ${f2(r.peakWorkerConnections / r.environments)}) | ${f2(r.idleCommandsPerSecond / r.environments)} idle cmd/s per env`,
  );
}
const last = results.at(-1);
if (last && base && last.environments > base.environments) {
  const added = last.environments - base.environments;
  const rssPerEnv = Math.max(last.workerRssMb - base.workerRssMb, last.apiRssMb - base.apiRssMb) / added;
  const growth = last.idleCommandsPerSecond / Math.max(base.idleCommandsPerSecond, 0.1);
  console.log("");
  console.log(`targets at ${last.environments} environments:`);
  console.log(
    `  RSS per environment ${f2(rssPerEnv)} MB (worst process; target < 2 MB): ${rssPerEnv < 2 ? "met" : "NOT met"}`,
  );
  const conns = last.workerConnections / last.environments;
  console.log(
    `  Redis connections per environment per worker ${f2(conns)} (target < 0.5): ${conns < 0.5 ? "met" : "NOT met"}`,
  );
  console.log(
    `  idle Redis commands/s ${f1(last.idleCommandsPerSecond)} at ${last.environments} vs ${f1(base.idleCommandsPerSecond)} at ${base.environments}: ×${f2(growth)} for ×${f2(last.environments / base.environments)} environments`,
  );
  console.log(
    `  job start p99 ${last.jobStartP99Ms} ms (target < 1000 ms): ${last.jobStartP99Ms < 1000 ? "met" : "NOT met"}`,
  );
}
process.exit(0);
