/**
 * Container health check, a separate entry from the service (it reads
 * process.env itself). Exits 0 when healthy, 1 when not, 2 on bad usage.
 *
 *   node dist/src/health/healthcheck.js          grpc.health.v1.Health/Check on 127.0.0.1:$ROOMKEY_GRPC_PORT is SERVING
 *   node dist/src/health/healthcheck.js worker   $ROOMKEY_WORKER_HEARTBEAT_FILE was written in the last 30 s
 */
import { statSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { Client, credentials } from "@grpc/grpc-js";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { grpcClientDefinition } from "../rpc/grpc/grpc-adapter.js";

const deadlineMs = 2_000;
/** The worker writes its heartbeat every 5 s. */
const heartbeatMaxAgeMs = 30_000;

/** Why the API is unhealthy, or undefined when it reports SERVING. */
async function apiProblem(port: number): Promise<string | undefined> {
  const check = grpcClientDefinition(Health).check;
  if (!check) throw new Error("grpc.health.v1.Health has no Check method");
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const response = await new Promise<HealthCheckResponse>((resolve, reject) => {
      client.makeUnaryRequest<HealthCheckRequest, HealthCheckResponse>(
        check.path,
        check.requestSerialize,
        check.responseDeserialize,
        create(HealthCheckRequestSchema, { service: "" }),
        { deadline: Date.now() + deadlineMs },
        (error, value) => (value ? resolve(value) : reject(error ?? new Error("empty response"))),
      );
    });
    const status = HealthCheckResponse_ServingStatus[response.status] ?? String(response.status);
    return response.status === HealthCheckResponse_ServingStatus.SERVING ? undefined : `status ${status}`;
  } finally {
    client.close();
  }
}

/** Why the worker is unhealthy, or undefined when its heartbeat is fresh. */
function workerProblem(file: string | undefined): string | undefined {
  if (!file) return "ROOMKEY_WORKER_HEARTBEAT_FILE is not set";
  const stat = statSync(file, { throwIfNoEntry: false });
  if (!stat) return `heartbeat file ${file} does not exist`;
  const ageMs = Date.now() - stat.mtimeMs;
  return ageMs < heartbeatMaxAgeMs ? undefined : `heartbeat file ${file} is ${Math.round(ageMs / 1000)} s old`;
}

const target = process.argv[2];
const port = Number(process.env.ROOMKEY_GRPC_PORT || 50051);
if ((target !== undefined && target !== "worker") || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write("usage: ROOMKEY_GRPC_PORT=<1-65535> healthcheck.js [worker]\n");
  process.exit(2);
}
try {
  const problem =
    target === "worker" ? workerProblem(process.env.ROOMKEY_WORKER_HEARTBEAT_FILE) : await apiProblem(port);
  if (problem) {
    process.stderr.write(`unhealthy: ${problem}\n`);
    process.exit(1);
  }
  process.stdout.write("healthy\n");
  process.exit(0);
} catch (error) {
  process.stderr.write(`unhealthy: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
