/**
 * Do WatchAccounts streams give their memory back? One roomkey (role `api`,
 * the compiled build) runs as a child process. Each round this process opens
 * `BENCH_STREAMS` WatchAccounts streams on one port (250 at a time, each
 * batch live before the next: an account event published on the
 * environment's Redis channel reached every stream), then drops them all
 * abruptly: it destroys the TCP sockets under the HTTP/2 sessions (gRPC port)
 * or the HTTP/1.1 connections (Connect port), with no RST_STREAM, no GOAWAY
 * and no end of stream (test/helpers/raw-watches.ts). Then it waits until
 * the child has closed those connections, collects garbage in the child and
 * reads its memory.
 *
 * Each transport gets its own child process and `BENCH_STREAM_ROUNDS`
 * rounds. A row per round: RSS (anonymous and file-backed, from /proc), V8's
 * heapTotal and heapUsed, external (Buffers); in brackets RSS and heapUsed
 * while the streams were open; the handles the child still holds; and
 * whether its Redis connection is still subscribed to the environment's
 * account channel (it must not be once every watcher is gone: a handler left
 * in the event bus keeps it subscribed). The last lines give each
 * transport's final/round-1 ratios for RSS and heapUsed.
 *
 * The child is measured from outside, over the V8 inspector: it runs with
 * `--inspect=127.0.0.1:0` (a random loopback port, for this child only) and
 * `--expose-gc`, and this process evaluates `gc()` and
 * `process.memoryUsage()` in it. roomkey has no hook of its own for this.
 * Node 20 has WebSocket behind `--experimental-websocket`, which the npm
 * script passes.
 *
 *   npm run bench:streams          (brings up FerretDB and Redis like the tests)
 *   BENCH_STREAMS=2000 BENCH_STREAM_ROUNDS=10 BENCH_STREAM_TRANSPORTS=grpc,connect,grpc-web npm run bench:streams
 *
 * Diagnosis (each disturbs the RSS figures of the rounds after it):
 *   BENCH_HEAP_DIFF=1     heap snapshots after round 1 and the last round: which objects grew in between
 *   BENCH_MALLOC_TRIM=1   after each round, glibc's malloc_trim(0) in the child (through gdb) and the RSS then:
 *                         what it gives back was free memory the allocator kept, not memory anything holds
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { Redis } from "ioredis";
import type { Config } from "../src/config.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import {
  countObjects,
  Inspector,
  inspectorUrlIn,
  type Memory,
  measure,
  procStatus,
} from "../test/helpers/inspector.js";
import {
  accountEventPayload,
  rawWatches,
  untilLive,
  type WatchTransport,
  watchChannel,
} from "../test/helpers/raw-watches.js";
import { dropDeployment, testConfig } from "../test/helpers/server.js";

const streams = Number(process.env.BENCH_STREAMS ?? 2_000);
const rounds = Number(process.env.BENCH_STREAM_ROUNDS ?? 10);
const transports = (process.env.BENCH_STREAM_TRANSPORTS ?? "grpc,connect").split(",") as WatchTransport[];
const heapDiff = process.env.BENCH_HEAP_DIFF === "1";
const mallocTrim = process.env.BENCH_MALLOC_TRIM === "1";
/**
 * Streams opened at a time, each batch watching a tenant of its own.
 * Connections beyond the server's accept queue (511) would wait for TCP
 * retransmissions; and an event of a batch's tenant is written to that batch
 * only, so making a batch live does not keep the server busy writing to all
 * the streams before it.
 */
const batch = 250;
const environment = "staging";
const root = resolve(import.meta.dirname, "..");

/** Diagnosis only: glibc's malloc_trim(0) in the child, through gdb; then the child's RSS. */
function rssAfterMallocTrim(pid: number): number {
  execFileSync("gdb", ["-p", String(pid), "-batch", "-ex", "call (int) malloc_trim(0)"], { stdio: "ignore" });
  return procStatus(pid, "VmRSS");
}

interface Child {
  pid: number;
  grpcPort: number;
  httpPort: number;
  inspector: Inspector;
  stop(): Promise<void>;
}

// Interrupted, the bench still takes its child down (the `exit` handlers below).
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

/** roomkey's compiled build as a child process, with its inspector on a random loopback port. */
async function startChild(config: Config): Promise<Child> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The bench's own flags (WebSocket, tsx) are not the child's.
  delete env.NODE_OPTIONS;
  for (const [key, value] of Object.entries(config)) {
    if (value !== undefined) env[key] = Array.isArray(value) ? value.join(",") : String(value);
  }
  env.ROOMKEY_LOG_LEVEL = "info";
  const child: ChildProcess = spawn(
    process.execPath,
    ["--expose-gc", "--inspect=127.0.0.1:0", "dist/src/main.js", "api"],
    { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise((done) => child.once("exit", done));
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const ports = new Promise<{ grpcPort: number; httpPort: number }>((done, fail) => {
    let buffer = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        const entry = JSON.parse(line) as { msg?: string; grpcPort?: number; httpPort?: number };
        if (entry.msg === "listening" && entry.grpcPort && entry.httpPort) {
          done({ grpcPort: entry.grpcPort, httpPort: entry.httpPort });
        }
      }
    });
    child.once("exit", (code) => fail(new Error(`roomkey exited (${code}) before listening`)));
  });
  const inspectorUrl = new Promise<string>((done) => {
    let text = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const found = inspectorUrlIn(text);
      if (found) done(found);
    });
  });
  const { grpcPort, httpPort } = await ports;
  const inspector = await Inspector.open(await inspectorUrl);
  return {
    pid: child.pid ?? 0,
    grpcPort,
    httpPort,
    inspector,
    async stop() {
      inspector.close();
      child.kill("SIGTERM");
      await exited;
      process.off("exit", killOnExit);
    },
  };
}

/** Resolves once the default environments exist (bootstrap done). */
async function untilReady(grpcPort: number, adminKey: string): Promise<void> {
  const client = grpcClient(EnvironmentService, `127.0.0.1:${grpcPort}`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.unary(EnvironmentService.method.getEnvironment, {}, metadataFor(environment, adminKey));
        return;
      } catch (error) {
        if (attempt > 300) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.close();
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1).padStart(6);

function figures(m: Memory): string {
  return (
    `rss ${mb(m.rss)} MB (anon ${mb(m.rssAnon)}, file ${mb(m.rssFile)})   ` +
    `heapTotal ${mb(m.heapTotal)}   heapUsed ${mb(m.heapUsed)}   external ${mb(m.external)}`
  );
}

async function churn(transport: WatchTransport): Promise<{ first: Memory; last: Memory }> {
  const config = testConfig({ ROOMKEY_DEFAULT_ENVIRONMENTS: environment });
  const roomkey = await startChild(config);
  const redis = new Redis(config.REDIS_URL);
  const channel = watchChannel(config.ROOMKEY_QUEUE_PREFIX, environment);
  const subscribed = async () => {
    const [, count] = (await redis.pubsub("NUMSUB", channel)) as [string, number];
    return Number(count) > 0;
  };
  const secret = config.ROOMKEY_ADMIN_KEY;
  const port = transport === "grpc" ? roomkey.grpcPort : roomkey.httpPort;
  const label = transport.padEnd(8);
  let first: Memory | undefined;
  let last: Memory | undefined;
  let afterFirst: Map<string, number> | undefined;
  try {
    await untilReady(roomkey.grpcPort, secret);
    const fresh = await measure(roomkey.inspector, roomkey.pid);
    console.log(`${label} fresh     ${figures(fresh)}   handles ${fresh.handles}`);
    for (let round = 1; round <= rounds; round++) {
      const started = Date.now();
      const watches = rawWatches(transport, { port, environment, secret });
      for (let opened = 0; opened < streams; opened += batch) {
        const tenant = `tenant-${opened / batch}`;
        watches.open(Math.min(batch, streams - opened), tenant);
        await untilLive(watches, Math.min(opened + batch, streams), () =>
          redis.publish(channel, accountEventPayload(tenant)),
        );
      }
      const during = await measure(roomkey.inspector, roomkey.pid);
      watches.drop();
      // Once the child has closed every dropped connection, no watcher should keep it subscribed.
      await waitFor(
        async () => (await roomkey.inspector.evaluate<number>("process._getActiveHandles().length")) <= fresh.handles,
        30_000,
      );
      const unsubscribed = await waitFor(async () => !(await subscribed()), 5_000);
      const after = await measure(roomkey.inspector, roomkey.pid);
      first ??= after;
      last = after;
      console.log(
        `${label} round ${String(round).padStart(2)}  ${figures(after)}   ` +
          `(${watches.live()} open: rss ${mb(during.rss)}, heapUsed ${mb(during.heapUsed)})   handles ${after.handles}   ` +
          `channel ${unsubscribed ? "unsubscribed" : "STILL SUBSCRIBED"}   ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      if (mallocTrim) console.log(`${"".padEnd(19)}rss after malloc_trim ${mb(rssAfterMallocTrim(roomkey.pid))} MB`);
      if (heapDiff && round === 1) afterFirst = countObjects(await roomkey.inspector.heapSnapshot());
    }
    if (afterFirst) {
      const now = countObjects(await roomkey.inspector.heapSnapshot());
      const grown = [...now.entries()]
        .map(([name, count]) => ({ name, count: count - (afterFirst?.get(name) ?? 0) }))
        .filter((g) => g.count > 0)
        .sort((a, b) => b.count - a.count)
        .slice(0, 20);
      console.log(`${transport}: objects that grew in number between round 1 and round ${rounds}:`);
      for (const g of grown) console.log(`  +${String(g.count).padStart(7)}  ${g.name}`);
    }
  } finally {
    redis.disconnect();
    await roomkey.stop();
    await dropDeployment(config);
  }
  if (!first || !last) throw new Error("no round ran");
  return { first, last };
}

console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ` +
    `${streams} WatchAccounts streams per round opened ${batch} at a time, ${rounds} rounds, ` +
    `each dropped abruptly (sockets destroyed); memory after GC`,
);
const results: [WatchTransport, { first: Memory; last: Memory }][] = [];
for (const transport of transports) results.push([transport, await churn(transport)]);
for (const [transport, { first, last }] of results) {
  console.log(
    `${transport} round ${rounds}/round 1: rss ${(last.rss / first.rss).toFixed(3)}, heapUsed ${(last.heapUsed / first.heapUsed).toFixed(3)}`,
  );
}
