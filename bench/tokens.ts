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
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { HealthCheckRequestSchema } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  GetTokenRequestSchema,
  TokenService,
  VerifyTokenRequestSchema,
} from "../src/gen/roomkey/v1/token_service_pb.js";
import { hex, measure, printRows, ratio, startBenchServer } from "./harness.js";

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
await server.stop();

printRows(rows);
console.log(`get-token/check ratio: ${ratio(rows, 3)}`);
console.log(`verify-1000/check ratio: ${ratio(rows, 2)}`);
const cpu = (row: number) => rows[row]?.[1].serverCpuUs ?? 0;
console.log(`verify/check server CPU per call: ${(cpu(0) / cpu(1)).toFixed(3)} (inverse cost: 1 = as cheap as Check)`);
console.log(`verify/check ratio: ${ratio(rows, 1)}`);
