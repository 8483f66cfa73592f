import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { killSpawned, spawnRoomkey } from "../helpers/child-process.js";
import { grpcClient, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { ownRedis } from "../helpers/own-services.js";
import { testQueue } from "../helpers/queues.js";
import {
  capturedLogger,
  databasesOf,
  dropDeployment,
  eventually,
  redisKeys,
  startTestServer,
  testConfig,
} from "../helpers/server.js";

const deployments: Config[] = [];

afterAll(async () => {
  await killSpawned();
  for (const config of deployments) await dropDeployment(config);
});

function deployment(overrides: Record<string, string> = {}): Config {
  const config = testConfig(overrides);
  deployments.push(config);
  return config;
}

describe("start-up", () => {
  it("when two servers start at once on an empty deployment, then the defaults exist exactly once and both serve them", async () => {
    const config = deployment();
    const logs = [capturedLogger("warn"), capturedLogger("warn")] as const;
    const [a, b] = await Promise.all([
      startTestServer({ ...config }, "api", logs[0].logger),
      startTestServer({ ...config }, "api", logs[1].logger),
    ]);
    // Neither replica needed a retry: losing the race is not an error.
    expect(logs.flatMap((l) => l.lines).filter((l) => l.msg === "bootstrap failed; retrying")).toEqual([]);
    try {
      const mongo = new MongoClient(config.MONGODB_URL);
      const records = await mongo.db(`${config.ROOMKEY_DB_PREFIX}_control`).collection("environments").find().toArray();
      expect(records.map((r) => r._id).sort()).toEqual(["development", "production", "staging"]);
      expect(records.every((r) => r.state === "active")).toBe(true);
      expect((await databasesOf(mongo, config.ROOMKEY_DB_PREFIX)).sort()).toEqual(
        ["control", "env_development", "env_production", "env_staging"].map((n) => `${config.ROOMKEY_DB_PREFIX}_${n}`),
      );
      await mongo.close();
      for (const server of [a, b]) {
        const client = grpcClient(EnvironmentService, server.grpcAddress);
        for (const name of ["development", "staging", "production"]) {
          const got = await client.unary(
            EnvironmentService.method.getEnvironment,
            {},
            metadataFor(name, server.adminKey),
          );
          expect(got.environment?.builtIn).toBe(true);
        }
        client.close();
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("when a default environment was deleted, then restarting does not bring it back", async () => {
    const config = deployment();
    const first = await startTestServer({ ...config }, "api");
    const client = grpcClient(EnvironmentService, first.grpcAddress);
    await client.unary(EnvironmentService.method.deleteEnvironment, {}, metadataFor("staging", first.adminKey));
    client.close();
    await first.stop();

    const second = await startTestServer({ ...config }, "api");
    const again = grpcClient(EnvironmentService, second.grpcAddress);
    try {
      const list = await again.unary(
        EnvironmentService.method.listEnvironments,
        {},
        metadataFor("development", second.adminKey),
      );
      expect(list.environments.map((e) => e.name)).toEqual(["development", "production"]);
    } finally {
      again.close();
      await second.stop();
    }
  });

  it("when roomkey starts again, then only environments not provisioned with today's schema are provisioned", async () => {
    const config = deployment();
    const first = await startTestServer({ ...config }, "api");
    await first.stop();
    const mongo = new MongoClient(config.MONGODB_URL);
    try {
      const control = mongo.db(`${config.ROOMKEY_DB_PREFIX}_control`);
      const markers = await control.collection("provisioned").find().toArray();
      expect(markers.map((m) => m._id).sort()).toEqual(["development", "production", "staging"]);
      // An index lost in two environments; staging's marker gone as well (as if made by an older release).
      const tokens = (name: string) => mongo.db(`${config.ROOMKEY_DB_PREFIX}_env_${name}`).collection("tokens");
      const indexes = async (name: string) => (await tokens(name).listIndexes().toArray()).map((i) => i.name as string);
      const lost = (await indexes("staging")).find((name) => name !== "_id_") ?? "";
      for (const name of ["staging", "production"]) await tokens(name).dropIndex(lost);
      await control.collection<{ _id: string }>("provisioned").deleteOne({ _id: "staging" });

      const second = await startTestServer({ ...config }, "api");
      await second.stop();
      // Staging was provisioned again; production, marked as done with this schema, was not looked at.
      expect(await indexes("staging")).toContain(lost);
      expect(await indexes("production")).not.toContain(lost);
      expect(await control.collection<{ _id: string }>("provisioned").countDocuments({ _id: "staging" })).toBe(1);
    } finally {
      await mongo.close();
    }
  });

  it("when a configuration value is bad, then the process stops at once naming the variable", async () => {
    const config = deployment();
    const proc = spawnRoomkey({ ...config, ROOMKEY_MASTER_KEY: "short" }, "api");
    const stderr: string[] = [];
    proc.child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk.toString()));
    expect(await proc.exited).toBe(2);
    expect(stderr.join("")).toContain("ROOMKEY_MASTER_KEY");
    expect(stderr.join("")).not.toContain("short");
  });
});

describe("workers follow environments", () => {
  it("when an environment is created or deleted, then a separate worker process starts or stops serving it within 5 seconds, and runs a queue's worker only while it has work", async () => {
    const config = deployment({ ROOMKEY_WORKER_IDLE_MS: "500" });
    const api = await startTestServer({ ...config }, "api");
    const worker = await startTestServer({ ...config }, "worker");
    const client = grpcClient(EnvironmentService, api.grpcAddress);
    const redis = new Redis(config.REDIS_URL);
    try {
      expect(worker.app.servedEnvironments()).toEqual(["development", "production", "staging"]);
      const name = randomEnvironmentName();
      await client.unary(EnvironmentService.method.createEnvironment, {}, metadataFor(name, api.adminKey));
      const startedIn = await eventually(() => worker.app.servedEnvironments().includes(name), 5_000, "serving");
      // Served, idle: no BullMQ worker and no blocking connection of its own.
      const probe = testQueue(redis, config.ROOMKEY_QUEUE_PREFIX, name, "handshake");
      expect(worker.app.liveQueues()).not.toContain(probe.name);
      expect(await probe.getWorkers()).toEqual([]);

      // A job on its handshake queue is taken by a worker started for it (no processor: it fails for good, not silently).
      const job = await probe.addAndWake("unknown-job", {});
      const takenIn = await eventually(async () => (await job.getState()) === "failed", 5_000, "job taken");
      expect((await probe.getJob(job.id ?? ""))?.failedReason).toContain("no processor");
      // Idle again: the worker and its connection go.
      await eventually(async () => (await probe.getWorkers()).length === 0, 5_000, "idle worker closed");
      expect(worker.app.liveQueues()).not.toContain(probe.name);

      await client.unary(EnvironmentService.method.deleteEnvironment, {}, metadataFor(name, api.adminKey));
      const deleted = Date.now();
      const stoppedIn = await eventually(() => !worker.app.servedEnvironments().includes(name), 5_000, "stopped");
      await probe.close();
      await eventually(
        async () => (await redisKeys(redis, `${config.ROOMKEY_QUEUE_PREFIX}:{${name}}.*`)).length === 0,
        5_000,
        "queues removed",
      );
      expect(await redis.zscore(`${config.ROOMKEY_QUEUE_PREFIX}:{fleet}:wake`, probe.name)).toBeNull();
      console.log(
        `worker started serving in ${startedIn} ms, took a job in ${takenIn} ms, stopped ${Date.now() - deleted} ms after the delete (served list: ${stoppedIn} ms)`,
      );
    } finally {
      client.close();
      redis.disconnect();
      await worker.stop();
      await api.stop();
    }
  });
});

describe("shutdown of real processes", () => {
  it("when the API process gets SIGTERM, then health turns NOT_SERVING and it exits 0 within the timeout", async () => {
    const config = deployment({ ROOMKEY_GRPC_PORT: "0" });
    const proc = spawnRoomkey(config, "api");
    try {
      await eventually(() => proc.logged("listening"), 30_000, "listening");
      const port = proc.lines.find((l) => l.msg === "listening")?.grpcPort;
      const health = grpcClient(Health, `127.0.0.1:${port}`);
      await eventually(
        async () => (await health.unary(Health.method.check, {}, metadataFor(undefined))).status === Serving.SERVING,
        30_000,
        "SERVING",
      );
      const seen: Serving[] = [];
      const watch = health.stream(Health.method.watch, {}, metadataFor(undefined));
      watch.on("data", (r: { status: Serving }) => seen.push(r.status));
      watch.on("error", () => undefined);
      await eventually(() => seen.includes(Serving.SERVING), 5_000, "watching");
      const started = Date.now();
      proc.child.kill("SIGTERM");
      const code = await proc.exited;
      const took = Date.now() - started;
      expect(code).toBe(0);
      expect(seen[seen.length - 1]).toBe(Serving.NOT_SERVING);
      expect(took).toBeLessThan(config.ROOMKEY_SHUTDOWN_TIMEOUT_MS + 2_000);
      console.log(`api exited ${code} ${took} ms after SIGTERM`);
      health.close();
    } finally {
      proc.child.kill("SIGKILL");
    }
  });

  it("when the worker process gets SIGTERM while Redis is down, then it still exits within the timeout", async () => {
    const redis = await ownRedis();
    const config = deployment({ REDIS_URL: redis.url });
    // The API creates the default environments; this worker process then serves them.
    await (await startTestServer({ ...config }, "api")).stop();
    const proc = spawnRoomkey(config, "worker");
    try {
      await eventually(
        () => proc.lines.filter((l) => l.msg === "serving environment").length === 3,
        30_000,
        "serving the defaults",
      );
      await redis.stop();
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      proc.child.kill("SIGTERM");
      const code = await proc.exited;
      const took = Date.now() - started;
      expect(code === 0 || code === 1).toBe(true);
      expect(proc.logged("shut down")).toBe(true);
      expect(took).toBeLessThan(config.ROOMKEY_SHUTDOWN_TIMEOUT_MS + 2_000);
      console.log(`worker exited ${code} ${took} ms after SIGTERM with Redis down`);
    } finally {
      proc.child.kill("SIGKILL");
      await redis.dispose();
    }
  });
});
