import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret } from "../../src/domain/tokens/token-secret.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, VerifyStatus } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { type CountingProxy, countingProxy } from "../helpers/counting-proxy.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OwnService, ownRedis } from "../helpers/own-services.js";
import {
  backendUrls,
  dropDeployment,
  eventually,
  startTestServer,
  type TestServer,
  testConfig,
} from "../helpers/server.js";

const t = TokenService.method;

/** Commands every client sends on its own (health probes, driver heartbeats, connection set-up). */
const mongoBackground = ["ping", "hello", "ismaster", "endsessions", "buildinfo"];
const redisBackground = ["ping", "info", "client", "select", "subscribe", "quit"];

/** Retries a call for a moment: a fresh environment reaches a replica's directory within a refresh. */
async function eventuallyOk<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt > 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function issue(server: TestServer, environment: string, scopes: string[]) {
  const client = grpcClient(TokenService, server.grpcAddress);
  try {
    const created = await client.unary(
      t.createToken,
      { name: "hot", scopes },
      metadataFor(environment, server.adminKey),
    );
    return { id: created.token?.id ?? "", secret: created.secret };
  } finally {
    client.close();
  }
}

describe("the hot path makes no round trip per call", () => {
  let mongo: CountingProxy;
  let redis: CountingProxy;
  let server: TestServer;
  let tokens: ReturnType<typeof grpcClient<typeof TokenService>>;
  let environment: string;

  beforeAll(async () => {
    const urls = backendUrls();
    const mongoUrl = new URL(urls.mongodbUrl);
    const redisUrl = new URL(urls.redisUrl);
    mongo = await countingProxy({ host: mongoUrl.hostname, port: Number(mongoUrl.port || 27017) }, "mongodb");
    redis = await countingProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) }, "redis");
    server = await startTestServer(
      testConfig({
        MONGODB_URL: mongo.url,
        REDIS_URL: redis.url,
        // No periodic reads during the measurement.
        ROOMKEY_ENVIRONMENT_REFRESH_MS: "60000",
        ROOMKEY_USAGE_FLUSH_MS: "60000",
      }),
      "api",
    );
    tokens = grpcClient(TokenService, server.grpcAddress);
    environment = randomEnvironmentName();
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    await environments.unary(
      EnvironmentService.method.createEnvironment,
      {},
      metadataFor(environment, server.adminKey),
    );
    environments.close();
  });

  afterAll(async () => {
    tokens.close();
    await server.stop();
    await dropDeployment(server.config);
    await Promise.all([mongo.close(), redis.close()]);
  });

  /** Mongo and Redis commands that `work` causes, background traffic aside. */
  async function roundTrips(work: () => Promise<unknown>) {
    const before = { mongo: mongo.total(mongoBackground), redis: redis.total(redisBackground) };
    await work();
    return { mongo: mongo.total(mongoBackground) - before.mongo, redis: redis.total(redisBackground) - before.redis };
  }

  /**
   * The commands of `work`, which makes many calls, measured up to three
   * times until a run shows none: the server's own timers (usage flush,
   * environment refresh, once a minute here) may land in one run, while a
   * round trip per call would show in every run.
   */
  async function roundTripsOfMany(work: () => Promise<unknown>) {
    let trips = await roundTrips(work);
    for (let attempt = 1; attempt < 3 && trips.mongo + trips.redis > 0; attempt++) trips = await roundTrips(work);
    return trips;
  }

  it("when a valid token is verified 200 times in steady state, then MongoDB and Redis see nothing", async () => {
    const caller = await issue(server, environment, ["tokens:verify"]);
    const target = await issue(server, environment, ["accounts:read"]);
    const metadata = metadataFor(environment, caller.secret);
    const warm = await tokens.unary(t.verifyToken, { token: target.secret }, metadata);
    expect(warm.status).toBe(VerifyStatus.VALID);
    const trips = await roundTripsOfMany(async () => {
      for (let i = 0; i < 200; i++) {
        const answer = await tokens.unary(t.verifyToken, { token: target.secret }, metadata);
        expect(answer.valid).toBe(true);
      }
    });
    expect(trips).toEqual({ mongo: 0, redis: 0 });
  });

  it("when secrets are malformed or fail their checksum, then they are refused with no round trip at all", async () => {
    const caller = await issue(server, environment, ["tokens:verify"]);
    const metadata = metadataFor(environment, caller.secret);
    await tokens.unary(t.verifyToken, { token: "warm-up" }, metadata);
    const good = generateSecret(environment);
    const badChecksum = `${good.slice(0, -1)}${good.endsWith("a") ? "b" : "a"}`;
    const malformed = ["rk_nope", `rk_${environment}_short`, "Bearer-ish", `rk_Prod_${"a".repeat(50)}`];
    const trips = await roundTripsOfMany(async () => {
      for (let i = 0; i < 25; i++) {
        for (const secret of [badChecksum, ...malformed]) {
          const answer = await tokens.unary(t.verifyToken, { token: secret }, metadata);
          expect([VerifyStatus.MALFORMED, VerifyStatus.BAD_CHECKSUM]).toContain(answer.status);
          const refused = await grpcFailure(
            tokens.unary(t.verifyToken, { token: good }, metadataFor(environment, secret)),
          );
          expect(refused.code).toBe(status.UNAUTHENTICATED);
        }
      }
    });
    expect(trips).toEqual({ mongo: 0, redis: 0 });
  });

  it("when a real token is new to the replica's cache, then one lookup is counted (the counter works)", async () => {
    const caller = await issue(server, environment, ["tokens:verify"]);
    const metadata = metadataFor(environment, caller.secret);
    await tokens.unary(t.verifyToken, { token: "warm-up" }, metadata);
    const known = await issue(server, environment, ["tokens:read"]);
    const trips = await roundTrips(() => tokens.unary(t.verifyToken, { token: known.secret }, metadata));
    expect(trips.mongo).toBe(1);
    expect(mongo.counts().get("find")).toBeGreaterThan(0);
  });

  it("when well-formed secrets name environments that do not exist, then none costs a round trip", async () => {
    const caller = await issue(server, environment, ["tokens:verify"]);
    await tokens.unary(t.verifyToken, { token: "warm-up" }, metadataFor(environment, caller.secret));
    const trips = await roundTripsOfMany(async () => {
      for (let i = 0; i < 100; i++) {
        const madeUp = `made-up-${i}`;
        const refused = await grpcFailure(
          tokens.unary(t.verifyToken, { token: "x" }, metadataFor(madeUp, generateSecret(madeUp))),
        );
        expect(refused.code).toBe(status.UNAUTHENTICATED);
      }
    });
    expect(trips).toEqual({ mongo: 0, redis: 0 });
  });

  it("when 200 well-formed secrets that no token has arrive, then none costs a round trip (the known-hash filter)", async () => {
    const caller = await issue(server, environment, ["tokens:verify"]);
    const metadata = metadataFor(environment, caller.secret);
    // The first unknown secret loads the environment's filter; from then on it answers.
    await tokens.unary(t.verifyToken, { token: generateSecret(environment) }, metadata);
    await eventually(
      async () => {
        const probe = await roundTrips(() =>
          tokens.unary(t.verifyToken, { token: generateSecret(environment) }, metadata),
        );
        return probe.mongo === 0;
      },
      5_000,
      "the filter answers",
    );
    const trips = await roundTripsOfMany(async () => {
      for (let i = 0; i < 200; i++) {
        const answer = await tokens.unary(t.verifyToken, { token: generateSecret(environment) }, metadata);
        expect(answer.status).toBe(VerifyStatus.UNKNOWN);
      }
    });
    expect(trips).toEqual({ mongo: 0, redis: 0 });
  });
});

describe("revocation reaches every replica", () => {
  const servers: TestServer[] = [];

  afterAll(async () => {
    for (const server of servers) await server.stop();
    // Replicas share a deployment: drop each one once.
    const deployments = new Map(servers.map((server) => [server.config.ROOMKEY_DB_PREFIX, server.config]));
    for (const config of deployments.values()) await dropDeployment(config);
  });

  it("when a token is revoked on one replica, then another rejects it within a second", async () => {
    const config = testConfig();
    const [a, b] = await Promise.all([startTestServer({ ...config }, "api"), startTestServer({ ...config }, "api")]);
    servers.push(a, b);
    const token = await issue(a, "staging", ["environment:read"]);
    const onB = grpcClient(EnvironmentService, b.grpcAddress);
    const get = () => onB.unary(EnvironmentService.method.getEnvironment, {}, metadataFor("staging", token.secret));
    await get();
    await get();
    const tokensOnA = grpcClient(TokenService, a.grpcAddress);
    await tokensOnA.unary(t.revokeToken, { id: token.id }, metadataFor("staging", a.adminKey));
    const revoked = Date.now();
    let refusedAfter = -1;
    while (Date.now() - revoked < 5_000) {
      const outcome = await get().then(
        () => undefined,
        (error) => error,
      );
      if (outcome) {
        expect(grpcDetails(outcome).errorInfo?.reason).toBe("TOKEN_REVOKED");
        refusedAfter = Date.now() - revoked;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    console.log(`replica B refused the revoked token ${refusedAfter} ms after RevokeToken returned on A`);
    expect(refusedAfter).toBeGreaterThanOrEqual(0);
    expect(refusedAfter).toBeLessThan(1_000);
    onB.close();
    tokensOnA.close();
  });

  it("when pub/sub cannot reach a replica, then its cached token still dies within the cache lifetime", async () => {
    const own: OwnService = await ownRedis();
    try {
      const config = testConfig({ ROOMKEY_TOKEN_CACHE_TTL_MS: "2000" });
      const a = await startTestServer({ ...config }, "api");
      // B shares the database but not Redis: it never hears A's invalidations.
      const b = await startTestServer({ ...config, REDIS_URL: own.url }, "api");
      servers.push(a, b);
      const token = await issue(a, "staging", ["environment:read"]);
      const onB = grpcClient(EnvironmentService, b.grpcAddress);
      const get = () => onB.unary(EnvironmentService.method.getEnvironment, {}, metadataFor("staging", token.secret));
      await get();
      const tokensOnA = grpcClient(TokenService, a.grpcAddress);
      await tokensOnA.unary(t.revokeToken, { id: token.id }, metadataFor("staging", a.adminKey));
      const revoked = Date.now();
      // Without the message B still trusts its cache for a while...
      await get();
      let refusedAfter = -1;
      while (Date.now() - revoked < 10_000) {
        const error = await get().then(
          () => undefined,
          (e) => e,
        );
        if (error) {
          refusedAfter = Date.now() - revoked;
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(
        `without pub/sub, replica B refused the revoked token ${refusedAfter} ms after revocation (cache 2000 ms)`,
      );
      expect(refusedAfter).toBeGreaterThan(0);
      expect(refusedAfter).toBeLessThanOrEqual(2_000 + 300);
      onB.close();
      tokensOnA.close();
    } finally {
      await own.dispose();
    }
  });

  it("when an environment is deleted and made again while a replica hears no pub/sub, then its refresh drops the old tokens", async () => {
    const own: OwnService = await ownRedis();
    try {
      const config = testConfig({ ROOMKEY_ENVIRONMENT_REFRESH_MS: "500" });
      const a = await startTestServer({ ...config }, "api");
      const b = await startTestServer({ ...config, REDIS_URL: own.url }, "api");
      servers.push(a, b);
      const environment = randomEnvironmentName();
      const environmentsOnA = grpcClient(EnvironmentService, a.grpcAddress);
      const admin = metadataFor(environment, a.adminKey);
      await environmentsOnA.unary(EnvironmentService.method.createEnvironment, {}, admin);
      const token = await issue(a, environment, ["environment:read"]);
      const onB = grpcClient(EnvironmentService, b.grpcAddress);
      const get = () => onB.unary(EnvironmentService.method.getEnvironment, {}, metadataFor(environment, token.secret));
      await eventuallyOk(get);
      await environmentsOnA.unary(EnvironmentService.method.deleteEnvironment, {}, admin);
      await environmentsOnA.unary(EnvironmentService.method.createEnvironment, {}, admin);
      const recreated = Date.now();
      let refusedAfter = -1;
      while (Date.now() - recreated < 10_000) {
        const error = await get().then(
          () => undefined,
          (e) => e,
        );
        if (error) {
          refusedAfter = Date.now() - recreated;
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(
        `without pub/sub, replica B refused a token of the deleted environment ${refusedAfter} ms after it was made again`,
      );
      expect(refusedAfter).toBeGreaterThanOrEqual(0);
      expect(refusedAfter).toBeLessThan(2_000);
      onB.close();
      environmentsOnA.close();
    } finally {
      await own.dispose();
    }
  });
});

describe("a token made on one replica opens the others (the known-hash filter)", () => {
  const servers: TestServer[] = [];

  afterAll(async () => {
    for (const server of servers) await server.stop();
    const deployments = new Map(servers.map((server) => [server.config.ROOMKEY_DB_PREFIX, server.config]));
    for (const config of deployments.values()) await dropDeployment(config);
  });

  /** Makes B's staging filter load (an unknown secret), then waits until it answers without a lookup. */
  async function filterLoaded(b: TestServer) {
    const verify = grpcClient(TokenService, b.grpcAddress);
    const admin = metadataFor("staging", b.adminKey);
    await verify.unary(t.verifyToken, { token: generateSecret("staging") }, admin);
    await new Promise((r) => setTimeout(r, 300));
    verify.close();
  }

  /** Milliseconds from `since` until B accepts the secret (polled every 10 ms), or -1. */
  async function acceptedAfter(b: TestServer, secret: string, since: number, limitMs: number) {
    const onB = grpcClient(EnvironmentService, b.grpcAddress);
    try {
      while (Date.now() - since < limitMs) {
        const ok = await onB.unary(EnvironmentService.method.getEnvironment, {}, metadataFor("staging", secret)).then(
          () => true,
          () => false,
        );
        if (ok) return Date.now() - since;
        await new Promise((r) => setTimeout(r, 10));
      }
      return -1;
    } finally {
      onB.close();
    }
  }

  it("when a token is created on A, then B accepts it within a second although B's filter was loaded before", async () => {
    const config = testConfig();
    const [a, b] = await Promise.all([startTestServer({ ...config }, "api"), startTestServer({ ...config }, "api")]);
    servers.push(a, b);
    await filterLoaded(b);
    const token = await issue(a, "staging", ["environment:read"]);
    const after = await acceptedAfter(b, token.secret, Date.now(), 5_000);
    console.log(`replica B accepted a token made on A ${after} ms after CreateToken returned`);
    expect(after).toBeGreaterThanOrEqual(0);
    expect(after).toBeLessThan(1_000);
  });

  it("when pub/sub cannot reach B, then B accepts a token made on A within the cache lifetime", async () => {
    const own: OwnService = await ownRedis();
    try {
      const config = testConfig({ ROOMKEY_TOKEN_CACHE_TTL_MS: "2000" });
      const a = await startTestServer({ ...config }, "api");
      const b = await startTestServer({ ...config, REDIS_URL: own.url }, "api");
      servers.push(a, b);
      await filterLoaded(b);
      const token = await issue(a, "staging", ["environment:read"]);
      const after = await acceptedAfter(b, token.secret, Date.now(), 10_000);
      console.log(
        `without pub/sub, replica B accepted a token made on A ${after} ms after it was made (cache 2000 ms)`,
      );
      expect(after).toBeGreaterThanOrEqual(0);
      // Like a revocation: a filter older than the cache lifetime is not trusted.
      expect(after).toBeLessThanOrEqual(2_000 + 300);
    } finally {
      await own.dispose();
    }
  });
});

describe("tokens while Redis is down", () => {
  it("when RotateToken runs, then it returns the new secret at once; RevokeToken keeps the revocation and says replicas were not told", async () => {
    const own: OwnService = await ownRedis();
    const server = await startTestServer(testConfig({ REDIS_URL: own.url }), "api");
    try {
      const token = await issue(server, "staging", ["environment:read"]);
      const victim = await issue(server, "staging", ["environment:read"]);
      await own.stop();
      const tokens = grpcClient(TokenService, server.grpcAddress);
      const admin = metadataFor("staging", server.adminKey);
      const started = Date.now();
      const rotated = await tokens.unary(t.rotateToken, { id: token.id }, admin, { deadlineMs: 10_000 });
      const rotateMs = Date.now() - started;
      expect(rotated.secret).toMatch(/^rk_staging_/);
      expect(rotateMs).toBeLessThan(3_000);
      const refused = await grpcFailure(tokens.unary(t.revokeToken, { id: victim.id }, admin, { deadlineMs: 10_000 }));
      expect(refused.code).toBe(status.UNAVAILABLE);
      expect(refused.details).toContain("is revoked, but other replicas could not be told");
      const got = await tokens.unary(t.getToken, { id: victim.id }, admin);
      expect(got.token?.revokeTime).toBeDefined();
      console.log(`RotateToken with Redis down answered in ${rotateMs} ms`);
      tokens.close();
    } finally {
      await server.stop();
      await own.dispose();
      await dropDeployment(server.config);
    }
  });
});
