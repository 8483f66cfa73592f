import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import type { Metadata } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import type { Logger } from "pino";
import { type Config, loadConfig } from "../../src/config.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { createLogger } from "../../src/logger.js";
import { type Role, type Roomkey, type RoomkeySeams, startRoomkey } from "../../src/main.js";
import { type GrpcClient, grpcClient, metadataFor } from "./clients.js";
import { randomPrefix } from "./names.js";

/** The real services the test command brought up (scripts/services.ts). */
export function backendUrls(): { mongodbUrl: string; redisUrl: string } {
  const mongodbUrl = process.env.MONGODB_URL;
  const redisUrl = process.env.REDIS_URL;
  if (!mongodbUrl || !redisUrl) {
    throw new Error("MONGODB_URL and REDIS_URL are not set: run the tests with `npm test`");
  }
  return { mongodbUrl, redisUrl };
}

export interface TestServer {
  app: Roomkey;
  config: Config;
  adminKey: string;
  grpcAddress: string;
  stop(): Promise<void>;
}

/**
 * What test providers listen on: the outbound guard refuses loopback unless
 * allowed, and the tests' providers run on 127.0.0.1.
 */
export const testOutboundAllow = "127.0.0.0/8,::1";

/**
 * Configuration for a test deployment: its own prefix, keys and ports chosen
 * by the OS, and provider calls allowed to loopback (`testOutboundAllow`).
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const { mongodbUrl, redisUrl } = backendUrls();
  const prefix = randomPrefix();
  return loadConfig({
    MONGODB_URL: mongodbUrl,
    REDIS_URL: redisUrl,
    ROOMKEY_ADMIN_KEY: randomBytes(32).toString("base64url"),
    ROOMKEY_MASTER_KEY: randomBytes(32).toString("base64"),
    ROOMKEY_HOST: "127.0.0.1",
    ROOMKEY_GRPC_PORT: "0",
    ROOMKEY_HTTP_PORT: "0",
    ROOMKEY_METRICS_PORT: "0",
    ROOMKEY_DB_PREFIX: prefix,
    ROOMKEY_QUEUE_PREFIX: prefix,
    ROOMKEY_LOG_LEVEL: process.env.ROOMKEY_TEST_LOG_LEVEL ?? "silent",
    ROOMKEY_ENVIRONMENT_REFRESH_MS: "1000",
    ROOMKEY_SHUTDOWN_TIMEOUT_MS: "5000",
    ROOMKEY_USAGE_FLUSH_MS: "500",
    // Tests fail authentication on purpose, hundreds of times from one address: the throttle has its own tests.
    ROOMKEY_AUTH_FAILURES_PER_MINUTE: "0",
    ROOMKEY_OUTBOUND_ALLOW: testOutboundAllow,
    ...overrides,
  });
}

/** A logger whose JSON lines a test can read. */
export function capturedLogger(level = "info"): {
  logger: Logger;
  lines: { level: number; msg: string; [field: string]: unknown }[];
} {
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

/** A real roomkey on port 0 against the real FerretDB and Redis. */
export async function startTestServer(
  config: Config = testConfig(),
  role: Role = "all",
  logger: Logger = createLogger(config.ROOMKEY_LOG_LEVEL),
  seams: RoomkeySeams = {},
): Promise<TestServer> {
  const app = await startRoomkey(config, role, logger, seams);
  await app.ready;
  return {
    app,
    config,
    adminKey: config.ROOMKEY_ADMIN_KEY,
    grpcAddress: `127.0.0.1:${app.grpcPort}`,
    stop: async () => {
      await app.shutdown();
    },
  };
}

/** Removes everything a test deployment wrote: its databases and its Redis keys. */
export async function dropDeployment(
  config: Pick<Config, "MONGODB_URL" | "REDIS_URL" | "ROOMKEY_DB_PREFIX" | "ROOMKEY_QUEUE_PREFIX">,
) {
  const mongo = new MongoClient(config.MONGODB_URL);
  try {
    for (const name of await databasesOf(mongo, config.ROOMKEY_DB_PREFIX)) await mongo.db(name).dropDatabase();
  } finally {
    await mongo.close();
  }
  // A Redis the test owned may be gone already: then there is nothing left to remove.
  const redis = new Redis(config.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
  } catch {
    return;
  }
  try {
    const keys = await redisKeys(redis, `${config.ROOMKEY_QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Database names of a deployment (`<prefix>_...`). */
export async function databasesOf(mongo: MongoClient, prefix: string): Promise<string[]> {
  const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
  return databases.map((d) => d.name).filter((name) => name.startsWith(`${prefix}_`));
}

/** Redis keys matching a SCAN pattern, such as `<prefix>:*`. */
export async function redisKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return keys;
}

/** Polls until `check` returns true, or fails after `timeoutMs`; returns the time it took. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** A test file's own deployment: a real server, a gRPC client per service, and direct database and Redis access. */
export interface Deployment {
  server: TestServer;
  environments: GrpcClient<typeof EnvironmentService>;
  tokens: GrpcClient<typeof TokenService>;
  accounts: GrpcClient<typeof AccountService>;
  mongo: MongoClient;
  redis: Redis;
  /** Metadata for a call to `environment` with the admin key. */
  admin(environment: string): Metadata;
  stop(): Promise<void>;
}

export async function startDeployment(
  config: Config = testConfig(),
  role: Role = "all",
  options: { logger?: Logger; seams?: RoomkeySeams } = {},
): Promise<Deployment> {
  const server = await startTestServer(
    config,
    role,
    options.logger ?? createLogger(config.ROOMKEY_LOG_LEVEL),
    options.seams ?? {},
  );
  const deployment: Deployment = {
    server,
    environments: grpcClient(EnvironmentService, server.grpcAddress),
    tokens: grpcClient(TokenService, server.grpcAddress),
    accounts: grpcClient(AccountService, server.grpcAddress),
    mongo: new MongoClient(config.MONGODB_URL),
    redis: new Redis(config.REDIS_URL),
    admin: (environment) => metadataFor(environment, server.adminKey),
    async stop() {
      for (const client of [deployment.environments, deployment.tokens, deployment.accounts]) client.close();
      await server.stop();
      await deployment.mongo.close();
      deployment.redis.disconnect();
      await dropDeployment(config);
    },
  };
  return deployment;
}
