import { status } from "@grpc/grpc-js";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthType, CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { grpcClient, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { databasesOf, dropDeployment, redisKeys, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let grpc: ReturnType<typeof grpcClient<typeof EnvironmentService>>;
let mongo: MongoClient;
let redis: Redis;
const m = EnvironmentService.method;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcClient(EnvironmentService, server.grpcAddress);
  mongo = new MongoClient(server.config.MONGODB_URL);
  redis = new Redis(server.config.REDIS_URL);
});

afterAll(async () => {
  grpc.close();
  await server.stop();
  await mongo.close();
  redis.disconnect();
  await dropDeployment(server.config);
});

const admin = (env: string) => metadataFor(env, server.adminKey);

function integration(name: string) {
  return {
    name,
    authType: AuthType.API_KEY,
    credentialCheck: { url: "https://provider.example/me", placement: CredentialPlacement.BEARER },
  };
}

/** A delayed job of the test's own on an environment's queue; returns its id. */
async function jobOn(environment: string, kind: string): Promise<string> {
  const queue = new Queue(`${environment}.${kind}`, { connection: redis, prefix: server.config.ROOMKEY_QUEUE_PREFIX });
  const job = await queue.add("probe", { marker: environment }, { delay: 3_600_000 });
  await queue.close();
  return job.id ?? "";
}

describe("environments are sealed rooms", () => {
  it("when an integration is put in one environment, then another environment cannot see it", async () => {
    const [a, b] = [randomEnvironmentName(), randomEnvironmentName()];
    await grpc.unary(m.createEnvironment, {}, admin(a));
    await grpc.unary(m.createEnvironment, {}, admin(b));
    await grpc.unary(m.putIntegration, { integration: integration("only-in-a") }, admin(a));

    expect((await grpc.unary(m.getIntegration, { name: "only-in-a" }, admin(a))).integration?.name).toBe("only-in-a");
    const error = await grpcFailure(grpc.unary(m.getIntegration, { name: "only-in-a" }, admin(b)));
    expect(error.code).toBe(status.NOT_FOUND);
    expect((await grpc.unary(m.listIntegrations, {}, admin(b))).integrations).toEqual([]);
    const deleteInB = await grpcFailure(grpc.unary(m.deleteIntegration, { name: "only-in-a" }, admin(b)));
    expect(deleteInB.code).toBe(status.NOT_FOUND);
    expect((await grpc.unary(m.getIntegration, { name: "only-in-a" }, admin(a))).integration?.name).toBe("only-in-a");
  });

  it("when the same integration name exists in two environments, then each keeps its own configuration", async () => {
    const [a, b] = [randomEnvironmentName(), randomEnvironmentName()];
    await grpc.unary(m.createEnvironment, {}, admin(a));
    await grpc.unary(m.createEnvironment, {}, admin(b));
    await grpc.unary(m.putIntegration, { integration: { ...integration("crm"), displayName: "sandbox" } }, admin(a));
    await grpc.unary(m.putIntegration, { integration: { ...integration("crm"), displayName: "real" } }, admin(b));
    expect((await grpc.unary(m.getIntegration, { name: "crm" }, admin(a))).integration?.displayName).toBe("sandbox");
    expect((await grpc.unary(m.getIntegration, { name: "crm" }, admin(b))).integration?.displayName).toBe("real");
  });

  it("when one environment is deleted, then the others keep their database, data and queued jobs", async () => {
    const [doomed, kept] = [randomEnvironmentName(), randomEnvironmentName()];
    const keptJobs: Record<string, string> = {};
    for (const name of [doomed, kept]) {
      await grpc.unary(m.createEnvironment, {}, admin(name));
      await grpc.unary(m.putIntegration, { integration: integration("crm") }, admin(name));
      for (const kind of ["handshake", "rotation"]) {
        const id = await jobOn(name, kind);
        if (name === kept) keptJobs[kind] = id;
      }
    }
    const prefix = server.config.ROOMKEY_QUEUE_PREFIX;

    await grpc.unary(m.deleteEnvironment, {}, admin(doomed));

    const dbs = await databasesOf(mongo, server.config.ROOMKEY_DB_PREFIX);
    expect(dbs).not.toContain(`${server.config.ROOMKEY_DB_PREFIX}_env_${doomed}`);
    expect(dbs).toContain(`${server.config.ROOMKEY_DB_PREFIX}_env_${kept}`);
    expect((await grpc.unary(m.getIntegration, { name: "crm" }, admin(kept))).integration?.name).toBe("crm");
    expect(await redisKeys(redis, `${prefix}:${doomed}.*`)).toEqual([]);
    for (const kind of ["handshake", "rotation"]) {
      const queue = new Queue(`${kept}.${kind}`, { connection: redis, prefix });
      const job = await queue.getJob(keptJobs[kind] ?? "");
      expect(job?.data, kind).toEqual({ marker: kept });
      expect(await job?.getState(), kind).toBe("delayed");
      await queue.close();
    }
    for (const name of ["development", "staging", "production"]) {
      expect((await grpc.unary(m.getEnvironment, {}, admin(name))).environment?.name).toBe(name);
    }
  });
});
