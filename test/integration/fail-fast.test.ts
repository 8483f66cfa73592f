import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health_pb.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, VerifyStatus } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OwnService, ownFerretDb } from "../helpers/own-services.js";
import { dropDeployment, eventually, startTestServer, type TestServer, testConfig } from "../helpers/server.js";

const t = TokenService.method;
const a = AccountService.method;

/** The longest a call that needs MongoDB may take to fail once MongoDB is known down. */
const failFastMs = 100;

describe("when MongoDB is known down, calls that need it fail fast", () => {
  let mongo: OwnService;
  let mongoKilled = false;
  let server: TestServer;
  let clients: {
    health: ReturnType<typeof grpcClient<typeof Health>>;
    tokens: ReturnType<typeof grpcClient<typeof TokenService>>;
    accounts: ReturnType<typeof grpcClient<typeof AccountService>>;
  };

  beforeAll(async () => {
    mongo = await ownFerretDb();
    server = await startTestServer(testConfig({ MONGODB_URL: mongo.url }), "api");
    clients = {
      health: grpcClient(Health, server.grpcAddress),
      tokens: grpcClient(TokenService, server.grpcAddress),
      accounts: grpcClient(AccountService, server.grpcAddress),
    };
  }, 120_000);

  afterAll(async () => {
    for (const client of Object.values(clients ?? {})) client.close();
    await server?.stop();
    // A failure half-way may have left FerretDB down: its Redis keys are still to be removed.
    if (mongoKilled) await mongo.start();
    if (server) await dropDeployment(server.config);
    await mongo?.dispose();
  });

  const health = async () =>
    (await clients.health.unary(Health.method.check, { service: "" }, metadataFor(undefined))).status;

  /** A call's outcome and how long it took, with the 5 s deadline clients use. */
  async function timed<T>(call: (options: { deadlineMs: number }) => Promise<T>) {
    const started = performance.now();
    const outcome = await call({ deadlineMs: 5_000 }).then(
      (value) => ({ ok: true as const, value }),
      (error: ServiceError) => ({ ok: false as const, error }),
    );
    return { ...outcome, ms: performance.now() - started };
  }

  it("when FerretDB is killed, then once health says NOT_SERVING, MongoDB calls are UNAVAILABLE within 100 ms, cached tokens still work, and all recovers when it is back", async () => {
    const environment = randomEnvironmentName();
    const admin = metadataFor(environment, server.adminKey);
    await grpcClient(EnvironmentService, server.grpcAddress).unary(
      EnvironmentService.method.createEnvironment,
      {},
      admin,
    );
    const caller = await clients.tokens.unary(
      t.createToken,
      { name: "caller", scopes: ["tokens:read", "tokens:verify", "accounts:read"] },
      admin,
    );
    const verified = await clients.tokens.unary(t.createToken, { name: "verified", scopes: ["tokens:read"] }, admin);
    const asCaller = metadataFor(environment, caller.secret);
    // Both secrets are now in the cache: the caller's by authentication, the other by VerifyToken.
    expect((await clients.tokens.unary(t.verifyToken, { token: verified.secret }, asCaller)).status).toBe(
      VerifyStatus.VALID,
    );
    await eventually(async () => (await health()) === Serving.SERVING, 10_000, "SERVING at first");

    const killedAt = performance.now();
    mongoKilled = true;
    await mongo.stop();
    const notServingMs = await eventually(async () => (await health()) === Serving.NOT_SERVING, 10_000, "NOT_SERVING");

    const needMongo: Record<string, (options: { deadlineMs: number }) => Promise<unknown>> = {
      GetAccount: (o: { deadlineMs: number }) =>
        clients.accounts.unary(a.getAccount, { id: "acc_0000000000000000000000" }, asCaller, o),
      ListTokens: (o: { deadlineMs: number }) => clients.tokens.unary(t.listTokens, {}, asCaller, o),
      CreateToken: (o: { deadlineMs: number }) =>
        clients.tokens.unary(t.createToken, { name: "while-down", scopes: ["tokens:read"] }, admin, o),
    };
    /**
     * Rounds of calls while MongoDB is down; the bound is on each method's
     * median, so that one stall of a shared machine does not decide.
     */
    async function measureWhileDown(phase: string, rounds: number): Promise<void> {
      const results: { method: string; ms: number; error?: ServiceError }[] = [];
      for (let round = 0; round < rounds; round++) {
        for (const [method, call] of Object.entries(needMongo)) {
          const result = await timed(call);
          results.push({ method, ms: result.ms, ...(result.ok ? {} : { error: result.error }) });
        }
        // Answered from memory: a cached token authenticates, and VerifyToken of a cached token is VALID.
        for (const [method, secret] of [
          ["VerifyToken(cached)", verified.secret],
          ["VerifyToken(caller)", caller.secret],
        ] as const) {
          const verify = await timed((o) => clients.tokens.unary(t.verifyToken, { token: secret }, asCaller, o));
          expect(verify.ok && verify.value.status, method).toBe(VerifyStatus.VALID);
          results.push({ method, ms: verify.ms });
        }
      }
      const summary = [...new Set(results.map((r) => r.method))].map((method) => {
        const times = results.filter((r) => r.method === method).map((r) => r.ms);
        const sorted = [...times].sort((x, y) => x - y);
        return { method, median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, times };
      });
      console.log(
        `${phase} (${(performance.now() - killedAt).toFixed(0)} ms after the kill):\n` +
          summary
            .map(
              ({ method, median, times }) =>
                `  ${method}: median ${median.toFixed(1)} ms (${times.map((ms) => ms.toFixed(1)).join(", ")})`,
            )
            .join("\n"),
      );
      for (const { method, error } of results) {
        if (method.startsWith("VerifyToken")) continue;
        expect(error?.code, method).toBe(status.UNAVAILABLE);
        if (!error) continue;
        expect(grpcDetails(error).errorInfo?.reason, method).toBe("BACKEND_UNAVAILABLE");
        // The gate's own message: the call never reached the driver.
        expect(error.details, method).toBe("MongoDB is unreachable; retry later");
      }
      for (const { method, median } of summary) expect(median, method).toBeLessThan(failFastMs);
    }

    await measureWhileDown(`NOT_SERVING ${notServingMs} ms after FerretDB was killed`, 5);
    // The driver's heartbeat (every 10 s) marks the server unknown: its operations, pings included, would
    // now wait out server selection (5 s). The gate must stay closed through pings that merely time out.
    await sleep(Math.max(0, 12_000 - (performance.now() - killedAt)));
    await measureWhileDown("once the driver has given up on the server", 3);

    const restartedAt = performance.now();
    await mongo.start();
    mongoKilled = false;
    const servingMs = await eventually(async () => (await health()) === Serving.SERVING, 20_000, "SERVING again");
    const listed = await clients.tokens.unary(t.listTokens, {}, asCaller, { deadlineMs: 5_000 });
    expect(listed.tokens.map((token) => token.name).sort()).toEqual(["caller", "verified"]);
    const created = await clients.tokens.unary(t.createToken, { name: "after", scopes: ["tokens:read"] }, admin);
    expect(created.secret).not.toBe("");
    const missing = await grpcFailure(
      clients.accounts.unary(a.getAccount, { id: "acc_0000000000000000000000" }, asCaller),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    console.log(
      `FerretDB restarted -> SERVING after ${servingMs} ms; calls succeed ${(performance.now() - restartedAt).toFixed(0)} ms after the restart began`,
    );
  }, 120_000);
});
