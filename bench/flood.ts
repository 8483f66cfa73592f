/**
 * An attacker's flood, run as its own process: `total` calls at `rate` per
 * second (open loop: sent on schedule, whatever the answers), each with a new
 * well-formed secret no token has in `authorization`. Prints one JSON line.
 *
 *   tsx bench/flood.ts <address> <path> <environment> <total> <rate>
 */
import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { generateSecret } from "../src/domain/tokens/token-secret.js";

const [address, path, environment, totalArg, rateArg] = process.argv.slice(2);
if (!address || !path || !environment || !totalArg || !rateArg) {
  process.stderr.write("usage: flood.ts <address> <path> <environment> <total> <rate>\n");
  process.exit(2);
}
const total = Number(totalArg);
const rate = Number(rateArg);
const client = new Client(address, credentials.createInsecure());
const identity = (bytes: Buffer) => bytes;
const codes: Record<number, number> = {};
const latencies: number[] = [];
const tickMs = 10;
const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));

function send(): Promise<void> {
  const metadata = new Metadata();
  metadata.add("roomkey-environment", environment ?? "");
  metadata.add("authorization", `Bearer ${generateSecret(environment ?? "")}`);
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    client.makeUnaryRequest(path ?? "", identity, identity, Buffer.alloc(0), metadata, {}, (error) => {
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      const code = error?.code ?? 0;
      codes[code] = (codes[code] ?? 0) + 1;
      resolve();
    });
  });
}

const started = Date.now();
const pending: Promise<void>[] = [];
for (let sent = 0; sent < total; ) {
  const due = started + (sent / perTick) * tickMs;
  const wait = due - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  for (let i = 0; i < perTick && sent < total; i++, sent++) pending.push(send());
}
await Promise.all(pending);
const elapsedS = (Date.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
process.stdout.write(`${JSON.stringify({ sent: total, rps: total / elapsedS, codes, p50: at(0.5), p99: at(0.99) })}\n`);
client.close();
