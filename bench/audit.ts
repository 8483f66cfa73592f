/**
 * What the audit log costs in MongoDB round trips (issue 16, point 3),
 * counted, not timed: one `api` replica in this process reaches MongoDB
 * through a counting proxy that tells commands apart by name and collection.
 *
 * - a mutating call (CreateToken) made one at a time: audit_events writes per call;
 * - the same calls made 50 at once: how many insertMany they share;
 * - refused authentications (a made-up token) from one peer, with the
 *   failure throttle on (burst 10): entries and writes per refusal;
 * - the same refusals naming an environment that does not exist: writes.
 *
 *   node --import tsx scripts/services.ts exec -- tsx bench/audit.ts
 *   BENCH_CALLS=100 BENCH_REFUSALS=2000 node --import tsx scripts/services.ts exec -- tsx bench/audit.ts
 */
import { MongoClient } from "mongodb";
import { sleep } from "../src/async.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../src/gen/roomkey/v1/token_service_pb.js";
import { createLogger } from "../src/logger.js";
import { databaseNames } from "../src/storage/mongo.js";
import { grpcClient, metadataFor } from "../test/helpers/clients.js";
import { type CountingProxy, countingProxy } from "../test/helpers/counting-proxy.js";
import { randomEnvironmentName } from "../test/helpers/names.js";
import { dropDeployment, startTestServer, testConfig } from "../test/helpers/server.js";

const calls = Number(process.env.BENCH_CALLS ?? 50);
const refusals = Number(process.env.BENCH_REFUSALS ?? 500);

/** Commands of `proxy` since `before` (a `commandsOn()` snapshot) whose `<command> <collection>` matches. */
function since(proxy: CountingProxy, before: Map<string, number>, match: (key: string) => boolean): number {
  let n = 0;
  for (const [key, value] of proxy.commandsOn()) if (match(key)) n += value - (before.get(key) ?? 0);
  return n;
}

async function main() {
  const base = testConfig();
  const { hostname, port } = new URL(base.MONGODB_URL);
  const proxy = await countingProxy({ host: hostname, port: Number(port) }, "mongodb");
  const config = testConfig({
    MONGODB_URL: proxy.url,
    ROOMKEY_DB_PREFIX: base.ROOMKEY_DB_PREFIX,
    ROOMKEY_QUEUE_PREFIX: base.ROOMKEY_QUEUE_PREFIX,
    ROOMKEY_AUTH_FAILURES_PER_MINUTE: "60",
    ROOMKEY_AUTH_FAILURE_BURST: "10",
  });
  const server = await startTestServer(config, "api", createLogger("silent"), {});
  const direct = new MongoClient(base.MONGODB_URL);
  const tokens = grpcClient(TokenService, server.grpcAddress);
  const env = randomEnvironmentName();
  const names = databaseNames(config.ROOMKEY_DB_PREFIX);
  const auditWrites = (key: string) => key === "insert audit_events";
  try {
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    await environments.unary(EnvironmentService.method.createEnvironment, {}, metadataFor(env, server.adminKey));
    environments.close();
    const admin = metadataFor(env, server.adminKey);
    await tokens.unary(TokenService.method.createToken, { name: "warm", scopes: ["tokens:read"] }, admin);

    let before = proxy.commandsOn();
    for (let i = 0; i < calls; i++) {
      await tokens.unary(TokenService.method.createToken, { name: `s${i}`, scopes: ["tokens:read"] }, admin);
    }
    const sequentialAudit = since(proxy, before, auditWrites);
    const sequentialAll = since(proxy, before, () => true);

    before = proxy.commandsOn();
    await Promise.all(
      Array.from({ length: calls }, (_, i) =>
        tokens.unary(TokenService.method.createToken, { name: `c${i}`, scopes: ["tokens:read"] }, admin),
      ),
    );
    const concurrentAudit = since(proxy, before, auditWrites);

    const collection = direct.db(names.environment(env)).collection("audit_events");
    const entriesBefore = await collection.countDocuments({});
    before = proxy.commandsOn();
    const refuse = (environment: string) =>
      tokens
        .unary(TokenService.method.listTokens, {}, metadataFor(environment, `rk_${environment}_made_up_secret`))
        .catch(() => undefined);
    for (let i = 0; i < refusals; i++) await refuse(env);
    await sleep(2_500);
    const refusalWrites = since(proxy, before, auditWrites);
    const refusalAll = since(
      proxy,
      before,
      (key) => !key.startsWith("hello") && !key.startsWith("ismaster") && key !== "ping",
    );
    const refusalEntries = (await collection.countDocuments({})) - entriesBefore;
    const aggregated = await collection.find({ "details.count": { $exists: true } }).toArray();

    before = proxy.commandsOn();
    const unknown = randomEnvironmentName();
    for (let i = 0; i < refusals; i++) await refuse(unknown);
    await sleep(1_500);
    const unknownWrites = since(proxy, before, auditWrites);
    const unknownDatabases = (await direct.db("admin").admin().listDatabases({ nameOnly: true })).databases.filter(
      (d) => d.name === names.environment(unknown),
    ).length;

    const figures = {
      mutatingCallsSequential: calls,
      auditInsertsPerSequentialCall: sequentialAudit / calls,
      mongoCommandsPerSequentialCreateToken: sequentialAll / calls,
      mutatingCallsConcurrent: calls,
      auditInsertsForConcurrentCalls: concurrentAudit,
      refusals,
      refusalAuditInserts: refusalWrites,
      refusalMongoCommands: refusalAll,
      refusalEntriesWritten: refusalEntries,
      aggregatedEntries: aggregated.map((doc) => doc.details),
      unknownEnvironmentRefusals: refusals,
      unknownEnvironmentAuditInserts: unknownWrites,
      unknownEnvironmentDatabases: unknownDatabases,
    };
    for (const [key, value] of Object.entries(figures)) console.log(`${key}: ${JSON.stringify(value)}`);
    console.log(`audit: ${JSON.stringify(figures)}`);
  } finally {
    tokens.close();
    await server.stop();
    await direct.close();
    await proxy.close();
    await dropDeployment(base);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
