/**
 * What the benchmarks share: a roomkey in this process, a load generator in
 * another (bench/load.ts), and one line of figures per row.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Config } from "../src/config.js";
import type * as Logging from "../src/logger.js";
import type * as Main from "../src/main.js";
import { dropDeployment, testConfig } from "../test/helpers/server.js";

/** Seconds measured per row in all (spread over the rounds). */
export const seconds = Number(process.env.BENCH_SECONDS ?? 10);
/** Rows take turns this many times, so that a noisy moment on a shared machine weighs on all rows alike. */
export const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
export const concurrency = 50;
const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);

export interface Result {
  calls: number;
  /** Completed calls per gRPC status code. */
  codes: Record<string, number>;
  clientCpuUs: number;
  serverCpuUs: number;
  rps: number;
  p50: number;
  p99: number;
}

/** A request message, serialized once, for the load generator's command line. */
export function hex<D extends DescMessage>(schema: D, init: MessageInitShape<D>): string {
  return Buffer.from(toBinary(schema, create(schema, init))).toString("hex");
}

/** One slice: `inFlight` calls for `sliceSeconds` from a separate process; this process's CPU too. */
export async function slice(
  address: string,
  row: Row,
  sliceSeconds: number,
  inFlight = concurrency,
): Promise<Result & { elapsedS: number }> {
  // Long request lists go through a file: a command line has a size limit.
  let request = row.request;
  if (request.length > 64 * 1024) {
    const file = join(mkdtempSync(join(tmpdir(), "roomkey-bench-")), "requests");
    writeFileSync(file, request);
    request = `@${file}`;
  }
  const cpuBefore = process.cpuUsage();
  const { stdout } = await run(
    process.execPath,
    [
      "--import",
      "tsx",
      "bench/load.ts",
      address,
      row.path,
      request,
      String(sliceSeconds),
      String(inFlight),
      ...row.headers,
    ],
    { cwd: root, maxBuffer: 1 << 20 },
  );
  const cpu = process.cpuUsage(cpuBefore);
  const result = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Result;
  // The warm-up runs at the same rate: CPU over all calls made, an estimate of the server's CPU per call.
  const warmup = Math.min(2, sliceSeconds / 2);
  result.serverCpuUs = (cpu.user + cpu.system) / (result.calls * (1 + warmup / sliceSeconds));
  return { ...result, elapsedS: result.calls / result.rps };
}

/** A call to measure: its path, its serialized request and the metadata it sends. */
export interface Row {
  name: string;
  path: string;
  request: string;
  headers: string[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * Measures the rows in `rounds` turns (row 1, row 2, ..., row 1, ...):
 * rates over all turns, latency percentiles as the median of the turns.
 */
export async function measure(address: string, rows: Row[]): Promise<[string, Result][]> {
  const slices = rows.map(() => [] as (Result & { elapsedS: number })[]);
  for (let round = 0; round < rounds; round++) {
    for (const [i, row] of rows.entries()) slices[i]?.push(await slice(address, row, seconds / rounds));
  }
  return rows.map((row, i) => {
    const parts = slices[i] ?? [];
    const calls = parts.reduce((n, p) => n + p.calls, 0);
    const codes: Record<string, number> = {};
    for (const part of parts) for (const [code, n] of Object.entries(part.codes)) codes[code] = (codes[code] ?? 0) + n;
    return [
      row.name,
      {
        calls,
        codes,
        rps: calls / parts.reduce((s, p) => s + p.elapsedS, 0),
        p50: median(parts.map((p) => p.p50)),
        p99: median(parts.map((p) => p.p99)),
        clientCpuUs: parts.reduce((s, p) => s + p.clientCpuUs * p.calls, 0) / calls,
        serverCpuUs: parts.reduce((s, p) => s + p.serverCpuUs * p.calls, 0) / calls,
      },
    ];
  });
}

/**
 * A roomkey (api role) on its own deployment of the services `npm run bench:*`
 * brought up. It runs the compiled build (`npm run build`), as production
 * does, not this process's on-the-fly TypeScript transform, which wraps every
 * function it creates and so would weigh on the figures.
 */
export async function startBenchServer(): Promise<{
  app: Main.Roomkey;
  config: Config;
  address: string;
  stop(): Promise<void>;
}> {
  const main: typeof Main = await import(resolve(root, "dist/src/main.js"));
  const logging: typeof Logging = await import(resolve(root, "dist/src/logger.js"));
  const config = testConfig();
  const app = await main.startRoomkey(config, "api", logging.createLogger("silent"));
  await app.ready;
  return {
    app,
    config,
    address: `127.0.0.1:${app.grpcPort}`,
    async stop() {
      await app.shutdown();
      await dropDeployment(config);
    },
  };
}

export function printRows(rows: [string, Result][]): void {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ${seconds} s per row in ${rounds} turns, ${concurrency} in flight`,
  );
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   server ${r.serverCpuUs.toFixed(0).padStart(4)} µs/call   client ${r.clientCpuUs.toFixed(0).padStart(4)} µs/call   codes ${JSON.stringify(r.codes)}`,
    );
  }
}

/** rows[i].rps / rows[0].rps, three decimals. */
export function ratio(rows: [string, Result][], index: number): string {
  return ((rows[index]?.[1].rps ?? 0) / (rows[0]?.[1].rps ?? 1)).toFixed(3);
}
