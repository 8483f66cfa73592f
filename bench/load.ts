/**
 * Load generator, run as its own process so it does not share the server's
 * CPU: keeps `concurrency` unary calls in flight on one grpc-js channel for
 * `seconds` (after a warm-up) and prints one JSON line with what it measured.
 *
 *   tsx bench/load.ts <address> <path> <request-hex[,request-hex...]> <seconds> <concurrency> [header=value ...]
 *
 * Several requests are sent in turn, call after call; `@<file>` reads them from a file.
 */
import { readFileSync } from "node:fs";
import { Client, credentials, Metadata } from "@grpc/grpc-js";

const [address, path, requestHex, secondsArg, concurrencyArg, ...headerArgs] = process.argv.slice(2);
if (!address || !path || requestHex === undefined || !secondsArg || !concurrencyArg) {
  process.stderr.write("usage: load.ts <address> <path> <request-hex> <seconds> <concurrency> [header=value ...]\n");
  process.exit(2);
}
const requestList = requestHex.startsWith("@") ? readFileSync(requestHex.slice(1), "utf8").trim() : requestHex;
const requests = requestList.split(",").map((hex) => Buffer.from(hex, "hex"));
let next = 0;
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg);
const metadata = new Metadata();
for (const pair of headerArgs) {
  const at = pair.indexOf("=");
  metadata.add(pair.slice(0, at), pair.slice(at + 1));
}

const client = new Client(address, credentials.createInsecure());
const identity = (bytes: Buffer) => bytes;

/** One call; resolves with its latency and gRPC status code (an error status is an answer too). */
function call(): Promise<{ ms: number; code: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const request = requests[next++ % requests.length] ?? Buffer.alloc(0);
    client.makeUnaryRequest(path ?? "", identity, identity, request, metadata, {}, (error) => {
      resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, code: error?.code ?? 0 });
    });
  });
}

async function run(durationMs: number, record: boolean) {
  const latencies: number[] = [];
  const codes: Record<number, number> = {};
  const deadline = Date.now() + durationMs;
  const lane = async () => {
    while (Date.now() < deadline) {
      const { ms, code } = await call();
      if (!record) continue;
      latencies.push(ms);
      codes[code] = (codes[code] ?? 0) + 1;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { latencies, codes, elapsedMs: Date.now() - started };
}

await run(Math.min(2_000, seconds * 500), false);
const cpuBefore = process.cpuUsage();
const { latencies, codes, elapsedMs } = await run(seconds * 1_000, true);
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
process.stdout.write(
  `${JSON.stringify({ calls: latencies.length, codes, clientCpuUs: (cpu.user + cpu.system) / latencies.length, rps: latencies.length / (elapsedMs / 1000), p50: at(0.5), p99: at(0.99) })}\n`,
);
client.close();
