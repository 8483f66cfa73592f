import type { MongoClient } from "mongodb";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Clock } from "../domain/clock.js";
import { backendStartupGraceMs } from "../health/health-monitor.js";
import { createRedisClient, type RedisClient } from "../queue/redis-client.js";
import { type AvailabilityGate, createAvailabilityGate } from "../storage/availability-gate.js";
import {
  connectWithRetry,
  createMongoClient,
  driverSeesNoServer,
  isMongoUnreachable,
  mongoPing,
} from "../storage/mongo.js";
import type { Role } from "./roomkey.js";

/** One MongoClient and three Redis connections (or cluster clients) per process, and the gate that says when MongoDB is down. */
export interface Clients {
  mongo: MongoClient;
  /** Commands fail fast while Redis is down (the API answers UNAVAILABLE). */
  redis: RedisClient;
  /** For BullMQ workers, which wait for Redis instead. */
  workerRedis: RedisClient;
  /** Subscribed to pub/sub channels; can do nothing else. */
  subscriber: RedisClient;
  /** While pings say MongoDB cannot be reached, repository calls fail at once with UNAVAILABLE. */
  mongoGate: AvailabilityGate;
  /** Resolves once MongoDB answered the first time (or the process stopped trying). */
  mongoReady: Promise<void>;
  /** Closes every connection. */
  close(): Promise<void>;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Stage 1: the connections, opened in the background; nothing waits for them here. */
export function openClients(config: Config, role: Role, logger: Logger, clock: Clock, stopping: AbortSignal): Clients {
  const mongo = createMongoClient(config.MONGODB_URL, `roomkey-${role}`, config);
  const target = { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES };
  const redis = createRedisClient(target, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  const workerRedis = createRedisClient(target, { maxRetriesPerRequest: null, lazyConnect: true });
  const subscriber = createRedisClient(target, { lazyConnect: true });
  const connections = { redis, workerRedis, subscriber };
  for (const [name, connection] of Object.entries(connections)) {
    connection.on("error", (error) => logger.debug({ err: error, connection: name }, "redis connection error"));
    // ioredis keeps reconnecting by itself; the health monitor warns when Redis stays away.
    connection
      .connect()
      .catch((error: unknown) =>
        logger.info(
          { connection: name, reason: reasonOf(error) },
          "redis not reachable yet; reconnecting in the background",
        ),
      );
  }

  let mongoConnected = false;
  // The driver's monitor notices a dead server first: the gate pings at once then.
  const noServer = driverSeesNoServer(mongo, (gone) => {
    if (gone) mongoGate.probe().catch(() => undefined);
  });
  const mongoGate = createAvailabilityGate({
    backend: "MongoDB",
    ping: mongoPing(mongo, () => mongoConnected),
    isUnreachable: isMongoUnreachable,
    unreachableNow: noServer,
    pingTimeoutMs: 1_000,
    recheckMs: 1_000,
    clock,
    logger,
  });
  const connectStarted = clock.now().getTime();
  let warnedConnect = false;
  const mongoReady = connectWithRetry(mongo, stopping, (error, attempt) => {
    const elapsedMs = clock.now().getTime() - connectStarted;
    if (elapsedMs >= backendStartupGraceMs && !warnedConnect) {
      warnedConnect = true;
      logger.warn({ err: error, attempt, elapsedMs }, "MongoDB still unreachable since start-up; retrying");
    } else {
      logger.debug({ attempt, reason: reasonOf(error) }, "MongoDB not reachable yet; retrying");
    }
  }).then(async (connected) => {
    if (connected && warnedConnect) logger.info("MongoDB connected");
    mongoConnected = connected;
    // Pings before the connection closed the gate: open it now, not at the next ping.
    if (connected) await mongoGate.probe().catch(() => undefined);
  });

  return {
    mongo,
    redis,
    workerRedis,
    subscriber,
    mongoGate,
    mongoReady,
    async close() {
      for (const connection of Object.values(connections)) connection.disconnect();
      await mongo.close();
    },
  };
}
