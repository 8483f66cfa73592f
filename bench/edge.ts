/**
 * What the edge costs, against the health Check RPC on the same server in the
 * same run (the floor of the stack), over native gRPC with 50 calls in flight
 * from a separate process: the edge alone (environment metadata, admin key,
 * environment lookup, validation; ListTokens then answers UNIMPLEMENTED) and
 * two EnvironmentService reads that go to the database.
 *
 *   npm run bench:edge            (brings up FerretDB and Redis like the tests)
 *   BENCH_SECONDS=10 npm run bench:edge
 */
import { execFile } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  GetEnvironmentRequestSchema,
  GetIntegrationRequestSchema,
} from "../src/gen/roomkey/v1/environment_service_pb.js";
import { ListTokensRequestSchema } from "../src/gen/roomkey/v1/token_service_pb.js";
import { createLogger } from "../src/logger.js";
import { startRoomkey } from "../src/main.js";
import { dropDeployment, testConfig } from "../test/helpers/server.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = 50;
const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);

interface Result {
  calls: number;
  /** Completed calls per gRPC status code. */
  codes: Record<string, number>;
  clientCpuUs: number;
  serverCpuUs: number;
  rps: number;
  p50: number;
  p99: number;
}

function hex<D extends DescMessage>(schema: D, init: MessageInitShape<D>): string {
  return Buffer.from(toBinary(schema, create(schema, init))).toString("hex");
}

async function load(address: string, path: string, request: string, headers: string[]): Promise<Result> {
  const cpuBefore = process.cpuUsage();
  const { stdout } = await run(
    process.execPath,
    ["--import", "tsx", "bench/load.ts", address, path, request, String(seconds), String(concurrency), ...headers],
    { cwd: root, maxBuffer: 1 << 20 },
  );
  const cpu = process.cpuUsage(cpuBefore);
  const result = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Result;
  // Includes the warm-up, which runs at the same rate: an estimate of the server's CPU per call.
  result.serverCpuUs = (cpu.user + cpu.system) / (result.calls * (1 + Math.min(2, seconds / 2) / seconds));
  return result;
}

const config = testConfig();
const app = await startRoomkey(config, "api", createLogger("silent"));
await app.ready;
const address = `127.0.0.1:${app.grpcPort}`;
const auth = [`roomkey-environment=staging`, `authorization=Bearer ${config.ROOMKEY_ADMIN_KEY}`];

const rows: [string, Result][] = [];
// Every row sends the same metadata, so the rows differ only in what the server does.
rows.push([
  "health Check",
  await load(address, "/grpc.health.v1.Health/Check", hex(HealthCheckRequestSchema, {}), auth),
]);
rows.push([
  "edge only (ListTokens)",
  await load(address, "/roomkey.v1.TokenService/ListTokens", hex(ListTokensRequestSchema, {}), auth),
]);
rows.push([
  "GetEnvironment",
  await load(address, "/roomkey.v1.EnvironmentService/GetEnvironment", hex(GetEnvironmentRequestSchema, {}), auth),
]);
rows.push([
  "GetIntegration (NOT_FOUND)",
  await load(
    address,
    "/roomkey.v1.EnvironmentService/GetIntegration",
    hex(GetIntegrationRequestSchema, { name: "missing" }),
    auth,
  ),
]);
await app.shutdown();

await dropDeployment(config);

console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ${seconds} s per row, ${concurrency} in flight`,
);
for (const [name, r] of rows) {
  console.log(
    `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   server ${r.serverCpuUs.toFixed(0).padStart(4)} µs/call   client ${r.clientCpuUs.toFixed(0).padStart(4)} µs/call   codes ${JSON.stringify(r.codes)}`,
  );
}
const floor = rows[0]?.[1].rps ?? 1;
const ratio = (row: number) => ((rows[row]?.[1].rps ?? 0) / floor).toFixed(3);
console.log(`get-environment/check ratio: ${ratio(2)}`);
console.log(`get-integration/check ratio: ${ratio(3)}`);
console.log(`edge/check ratio: ${ratio(1)}`);
