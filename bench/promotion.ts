/**
 * DiffIntegrations and PromoteIntegrations of a 50-integration environment
 * (issue 16), against one roomkey (api role, the compiled build as
 * bench/harness.ts explains) on the services `npm run bench:*` brings up.
 *
 * The source has `BENCH_INTEGRATIONS` integrations (default 50): 60% OAuth
 * 2.0 with a client secret, the rest API-key. Each target has half of them
 * already, differing (OAuth ones in their client id, secret and scopes,
 * API-key ones in their display name), and 5 of its own. It prints:
 *
 * - the diff: time per call (mean, p50 over `BENCH_RUNS` calls), the
 *   response's size in bytes (protobuf, as on the gRPC wire, and as the
 *   Connect protocol's JSON), and the CLI's table (`roomkey integration
 *   diff`, the built bin run as a child process): its bytes, rows and time;
 * - the promotion of every integration: a dry run (mean, p50 over
 *   `BENCH_RUNS` calls), the real one and then a second one (every
 *   integration UNCHANGED), each in `BENCH_ROUNDS` fresh targets; the
 *   response's size.
 *
 *   npm run bench:promotion
 *   BENCH_INTEGRATIONS=200 BENCH_RUNS=20 npm run bench:promotion
 */
import { execFile } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { create, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { AuthType } from "../src/gen/roomkey/v1/common_pb.js";
import {
  CredentialPlacement,
  EnvironmentService,
  type IntegrationSchema,
} from "../src/gen/roomkey/v1/environment_service_pb.js";
import {
  DiffIntegrationsResponseSchema,
  PromoteIntegrationsResponseSchema,
  PromotionAction,
} from "../src/gen/roomkey/v1/promotion_pb.js";
import { cliBin } from "../test/helpers/cli-runner.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import { randomEnvironmentName } from "../test/helpers/names.js";
import { startBenchServer } from "./harness.js";

const integrations = Number(process.env.BENCH_INTEGRATIONS ?? 50);
const runs = Number(process.env.BENCH_RUNS ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const targetOnly = 5;
const root = resolve(import.meta.dirname, "..");

type IntegrationInit = MessageInitShape<typeof IntegrationSchema>;
const e = EnvironmentService.method;

/** Loopback: allowed by the bench's outbound policy, and no DNS lookup in the timings. */
const base = (name: string) => `http://127.0.0.1:9/${name}`;

function integration(index: number, side: "source" | "target"): IntegrationInit {
  const name = `integration-${String(index).padStart(3, "0")}`;
  const credentialCheck = {
    url: `${base(name)}/me`,
    placement: CredentialPlacement.BEARER,
    accountIdPath: "data.id",
    accountNamePath: "data.name",
  };
  if (index % 5 < 3) {
    return {
      name,
      displayName: `Provider ${index}`,
      authType: AuthType.OAUTH2,
      oauth2: {
        authorizationUrl: `${base(name)}/authorize`,
        tokenUrl: `${base(name)}/token`,
        clientId: `${side}-client-${index}`,
        clientSecret: `${side}-secret-${index}-${"x".repeat(32)}`,
        scopes: side === "source" ? ["read", "write", "admin"] : ["read", "write"],
        authorizationParams: { access_type: "offline", prompt: "consent" },
      },
      credentialCheck,
    };
  }
  return {
    name,
    displayName: side === "source" ? `Provider ${index} v2` : `Provider ${index}`,
    authType: AuthType.API_KEY,
    credentialCheck,
  };
}

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const p50 = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
  return `mean ${mean.toFixed(1).padStart(6)} ms   p50 ${p50.toFixed(1).padStart(6)} ms   (${samples.length} runs)`;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = process.hrtime.bigint();
  const result = await fn();
  return [result, Number(process.hrtime.bigint() - started) / 1e6];
}

const server = await startBenchServer();
const client = grpcClient(EnvironmentService, server.address);
const admin = (env: string) => metadataFor(env, server.config.ROOMKEY_ADMIN_KEY);

async function environmentWith(records: IntegrationInit[]): Promise<string> {
  const name = randomEnvironmentName();
  await client.unary(e.createEnvironment, {}, admin(name));
  for (const integration of records) await client.unary(e.putIntegration, { integration }, admin(name));
  return name;
}

const overlap = Array.from({ length: Math.floor(integrations / 2) }, (_, i) => integration(i * 2, "target"));
const own = Array.from({ length: targetOnly }, (_, i) => ({
  ...integration(1000 + i, "target"),
  name: `target-only-${i}`,
}));
const targetRecords = [...overlap, ...own];

try {
  const source = await environmentWith(Array.from({ length: integrations }, (_, i) => integration(i, "source")));
  const target = await environmentWith(targetRecords);

  const diff = () => client.unary(e.diffIntegrations, { fromEnvironment: source, pageSize: 500 }, admin(target));
  await diff();
  const diffTimes: number[] = [];
  let diffResponse = await diff();
  for (let i = 0; i < runs; i++) {
    const [response, ms] = await timed(diff);
    diffTimes.push(ms);
    diffResponse = response;
  }
  const diffFields = diffResponse.integrations.reduce((n, i) => n + i.fields.length, 0);
  const diffBytes = toBinary(DiffIntegrationsResponseSchema, diffResponse).length;
  const diffJsonBytes = toJsonString(DiffIntegrationsResponseSchema, diffResponse).length;

  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("ROOMKEY_")) env[key] = value;
  env.ROOMKEY_ADDR = server.address;
  env.ROOMKEY_TOKEN = server.config.ROOMKEY_ADMIN_KEY;
  const [table, cliMs] = await timed(() =>
    promisify(execFile)(process.execPath, [cliBin, "-e", target, "integration", "diff", "--from", source], {
      cwd: root,
      env,
      maxBuffer: 16 << 20,
    }),
  );

  const promote = (to: string, dryRun: boolean) =>
    client.unary(e.promoteIntegrations, { fromEnvironment: source, all: true, dryRun }, admin(to));
  const dryTimes: number[] = [];
  let dryResponse = await promote(target, true);
  for (let i = 0; i < runs; i++) {
    const [response, ms] = await timed(() => promote(target, true));
    dryTimes.push(ms);
    dryResponse = response;
  }
  const realTimes: number[] = [];
  const againTimes: number[] = [];
  let realResponse = dryResponse;
  let againResponse = dryResponse;
  for (let round = 0; round < rounds; round++) {
    const fresh = round === 0 ? target : await environmentWith(targetRecords);
    const [real, realMs] = await timed(() => promote(fresh, false));
    const [again, againMs] = await timed(() => promote(fresh, false));
    realTimes.push(realMs);
    againTimes.push(againMs);
    realResponse = real;
    againResponse = again;
    if (!again.promotions.every((p) => p.action === PromotionAction.UNCHANGED)) {
      throw new Error("the second promotion changed something");
    }
  }
  const count = (action: PromotionAction) => realResponse.promotions.filter((p) => p.action === action).length;
  const promoteBytes = (response: typeof realResponse) =>
    toBinary(PromoteIntegrationsResponseSchema, create(PromoteIntegrationsResponseSchema, response)).length;

  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}; source ${integrations} integrations (${Math.ceil((integrations * 3) / 5)} OAuth with secrets), target ${targetRecords.length} (${overlap.length} overlapping, ${targetOnly} its own)`,
  );
  console.log(`diff                ${stats(diffTimes)}`);
  console.log(
    `diff response       ${diffResponse.integrations.length} integrations, ${diffFields} fields: ${diffBytes} bytes protobuf, ${diffJsonBytes} bytes JSON`,
  );
  console.log(
    `diff CLI table      ${table.stdout.length} bytes, ${table.stdout.trimEnd().split("\n").length - 1} rows; ${cliMs.toFixed(0)} ms for the whole command (node start included)`,
  );
  console.log(`promote dry run     ${stats(dryTimes)}   response ${promoteBytes(dryResponse)} bytes`);
  console.log(
    `promote             ${stats(realTimes)}   ${count(PromotionAction.CREATE)} created, ${count(PromotionAction.UPDATE)} updated; response ${promoteBytes(realResponse)} bytes`,
  );
  console.log(
    `promote again       ${stats(againTimes)}   all ${againResponse.promotions.length} UNCHANGED; response ${promoteBytes(againResponse)} bytes`,
  );
} finally {
  client.close();
  await server.stop();
}
process.exit(0);
