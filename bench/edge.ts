/**
 * What the edge costs, against the health Check RPC on the same server in the
 * same run (the floor of the stack), over native gRPC with 50 calls in flight
 * from a separate process: the edge alone (environment metadata, admin key,
 * environment lookup, validation; GetAccount with a malformed id is refused
 * INVALID_ARGUMENT by the validator, so no handler runs)
 * and two EnvironmentService reads that go to the database.
 *
 *   npm run bench:edge            (brings up FerretDB and Redis like the tests)
 *   BENCH_SECONDS=10 npm run bench:edge
 */
import { HealthCheckRequestSchema } from "../src/gen/grpc/health/v1/health_pb.js";
import { GetAccountRequestSchema } from "../src/gen/roomkey/v1/account_service_pb.js";
import {
  GetEnvironmentRequestSchema,
  GetIntegrationRequestSchema,
} from "../src/gen/roomkey/v1/environment_service_pb.js";
import { hex, measure, printRows, ratio, startBenchServer } from "./harness.js";

const server = await startBenchServer();
const auth = ["roomkey-environment=staging", `authorization=Bearer ${server.config.ROOMKEY_ADMIN_KEY}`];
// Every row sends the same metadata, so the rows differ only in what the server does.
const rows = await measure(server.address, [
  {
    name: "health Check",
    path: "/grpc.health.v1.Health/Check",
    request: hex(HealthCheckRequestSchema, {}),
    headers: auth,
  },
  {
    name: "edge only (GetAccount, bad id)",
    path: "/roomkey.v1.AccountService/GetAccount",
    request: hex(GetAccountRequestSchema, { id: "not-an-id" }),
    headers: auth,
  },
  {
    name: "GetEnvironment",
    path: "/roomkey.v1.EnvironmentService/GetEnvironment",
    request: hex(GetEnvironmentRequestSchema, {}),
    headers: auth,
  },
  {
    name: "GetIntegration (NOT_FOUND)",
    path: "/roomkey.v1.EnvironmentService/GetIntegration",
    request: hex(GetIntegrationRequestSchema, { name: "missing" }),
    headers: auth,
  },
]);
await server.stop();

printRows(rows);
console.log(`get-environment/check ratio: ${ratio(rows, 2)}`);
console.log(`get-integration/check ratio: ${ratio(rows, 3)}`);
console.log(`edge/check ratio: ${ratio(rows, 1)}`);
