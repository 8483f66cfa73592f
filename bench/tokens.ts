/**
 * The token hot path against the floor of the stack: VerifyToken and an
 * authenticated GetToken, each against the health Check RPC on the same
 * server in the same run, over native gRPC with 50 calls in flight from a
 * separate process. Every row sends the same metadata (an API token with
 * tokens:verify and tokens:read), so the rows differ only in what the server
 * does. Target: VerifyToken at 85% or more of Check.
 *
 *   npm run bench:tokens          (brings up FerretDB and Redis like the tests)
 *   BENCH_SECONDS=10 npm run bench:tokens
 */

import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { HealthCheckRequestSchema } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  GetTokenRequestSchema,
  TokenService,
  VerifyTokenRequestSchema,
} from "../src/gen/roomkey/v1/token_service_pb.js";
import { hex, measure, printRows, ratio, slice, startBenchServer } from "./harness.js";

const server = await startBenchServer();
const tokens = createClient(TokenService, createGrpcTransport({ baseUrl: `http://${server.address}` }));
const headers = { "roomkey-environment": "staging", authorization: `Bearer ${server.config.ROOMKEY_ADMIN_KEY}` };
const caller = await tokens.createToken(
  { name: "bench-caller", scopes: ["tokens:verify", "tokens:read"] },
  { headers },
);
const verified = await tokens.createToken({ name: "bench-verified", scopes: ["accounts:read"] }, { headers });
const auth = ["roomkey-environment=staging", `authorization=Bearer ${caller.secret}`];
// Many tokens too, so that answers are not all the same one: 1,000 different ones, verified in turn.
const many: string[] = [];
for (let batch = 0; batch < 20; batch++) {
  const made = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      tokens.createToken({ name: `bench-${batch}-${i}`, scopes: ["accounts:read"] }, { headers }),
    ),
  );
  many.push(...made.map((m) => hex(VerifyTokenRequestSchema, { token: m.secret })));
}

const rows = await measure(server.address, [
  {
    name: "health Check",
    path: "/grpc.health.v1.Health/Check",
    request: hex(HealthCheckRequestSchema, {}),
    headers: auth,
  },
  {
    name: "VerifyToken",
    path: "/roomkey.v1.TokenService/VerifyToken",
    request: hex(VerifyTokenRequestSchema, { token: verified.secret }),
    headers: auth,
  },
  {
    name: "VerifyToken, 1,000 tokens",
    path: "/roomkey.v1.TokenService/VerifyToken",
    request: many.join(","),
    headers: auth,
  },
  {
    name: "GetToken (authenticated)",
    path: "/roomkey.v1.TokenService/GetToken",
    request: hex(GetTokenRequestSchema, { id: verified.token?.id ?? "" }),
    headers: auth,
  },
]);

// The unknown-token flood (issue 9, point 3): another client's cached VerifyToken, 4 calls in flight,
// alone, during a flood of well-formed secrets no token has (sent as credentials, at a fixed rate
// from a third process), and alone again. The failure throttle is off here (testConfig), so that
// every flood call reaches the verifier: this measures what an unknown secret costs.
const floodTotal = Number(process.env.BENCH_FLOOD_TOTAL ?? 20_000);
const floodRate = Number(process.env.BENCH_FLOOD_RATE ?? 1_000);
const floodSeconds = floodTotal / floodRate;
const victim = {
  name: "victim VerifyToken (cached)",
  path: "/roomkey.v1.TokenService/VerifyToken",
  request: hex(VerifyTokenRequestSchema, { token: verified.secret }),
  headers: auth,
};
const quietSeconds = Math.max(4, Math.round(floodSeconds / 2));
const before = await slice(server.address, victim, quietSeconds, 4);
const cpuBefore = process.cpuUsage();
const flood = promisify(execFile)(
  process.execPath,
  [
    "--import",
    "tsx",
    "bench/flood.ts",
    server.address,
    "/roomkey.v1.TokenService/VerifyToken",
    "staging",
    String(floodTotal),
    String(floodRate),
  ],
  { cwd: resolve(import.meta.dirname, ".."), maxBuffer: 1 << 20 },
);
const during = await slice(server.address, victim, Math.max(2, floodSeconds - 4), 4);
const floodResult = JSON.parse((await flood).stdout.trim().split("\n").pop() ?? "{}");
const floodCpu = process.cpuUsage(cpuBefore);
const after = await slice(server.address, victim, quietSeconds, 4);
await server.stop();

printRows(rows);
console.log(`get-token/check ratio: ${ratio(rows, 3)}`);
console.log(`verify-1000/check ratio: ${ratio(rows, 2)}`);
const cpu = (row: number) => rows[row]?.[1].serverCpuUs ?? 0;
console.log(`verify/check server CPU per call: ${(cpu(0) / cpu(1)).toFixed(3)} (inverse cost: 1 = as cheap as Check)`);
console.log(`verify/check ratio: ${ratio(rows, 1)}`);

const quietP99 = (before.p99 + after.p99) / 2;
const show = (name: string, r: { rps: number; p50: number; p99: number; codes: Record<string, number> }) =>
  console.log(
    `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(6)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   codes ${JSON.stringify(r.codes)}`,
  );
show("victim, before the flood", before);
show("victim, during the flood", during);
show("victim, after the flood", after);
show(`flood: ${floodTotal} unknown secrets`, floodResult);
console.log(
  `server CPU while flooded: ${((floodCpu.user + floodCpu.system) / 1e6).toFixed(2)} s (victim and flood calls together)`,
);
console.log(`flood victim p99 ratio (during / quiet, target <= 1.5): ${(during.p99 / quietP99).toFixed(3)}`);
