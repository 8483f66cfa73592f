import { status } from "@grpc/grpc-js";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { queueKinds } from "../../src/queue/queue-names.js";
import { grpcFailure } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, databasesOf, redisKeys, startDeployment } from "../helpers/server.js";

let d: Deployment;

beforeAll(async () => {
  d = await startDeployment();
});

afterAll(() => d.stop());

const admin = (env: string) => d.admin(env);
const m = EnvironmentService.method;

function integration(name: string) {
  return {
    name,
    authType: AuthType.API_KEY,
    credentialCheck: { url: "https://provider.example/me", placement: CredentialPlacement.BEARER },
  };
}

/** A delayed job of the test's own on an environment's queue; returns its id. */
async function jobOn(environment: string, kind: string): Promise<string> {
  const queue = new Queue(`{${environment}}.${kind}`, {
    connection: d.redis,
    prefix: d.server.config.ROOMKEY_QUEUE_PREFIX,
  });
  const job = await queue.add("probe", { marker: environment }, { delay: 3_600_000 });
  await queue.close();
  return job.id ?? "";
}

describe("environments are sealed rooms", () => {
  it("when an integration is put in one environment, then another environment cannot see it", async () => {
    const [a, b] = [randomEnvironmentName(), randomEnvironmentName()];
    await d.environments.unary(m.createEnvironment, {}, admin(a));
    await d.environments.unary(m.createEnvironment, {}, admin(b));
    await d.environments.unary(m.putIntegration, { integration: integration("only-in-a") }, admin(a));

    expect((await d.environments.unary(m.getIntegration, { name: "only-in-a" }, admin(a))).integration?.name).toBe(
      "only-in-a",
    );
    const error = await grpcFailure(d.environments.unary(m.getIntegration, { name: "only-in-a" }, admin(b)));
    expect(error.code).toBe(status.NOT_FOUND);
    expect((await d.environments.unary(m.listIntegrations, {}, admin(b))).integrations).toEqual([]);
    const deleteInB = await grpcFailure(d.environments.unary(m.deleteIntegration, { name: "only-in-a" }, admin(b)));
    expect(deleteInB.code).toBe(status.NOT_FOUND);
    expect((await d.environments.unary(m.getIntegration, { name: "only-in-a" }, admin(a))).integration?.name).toBe(
      "only-in-a",
    );
  });

  it("when the same integration name exists in two environments, then each keeps its own configuration", async () => {
    const [a, b] = [randomEnvironmentName(), randomEnvironmentName()];
    await d.environments.unary(m.createEnvironment, {}, admin(a));
    await d.environments.unary(m.createEnvironment, {}, admin(b));
    await d.environments.unary(
      m.putIntegration,
      { integration: { ...integration("crm"), displayName: "sandbox" } },
      admin(a),
    );
    await d.environments.unary(
      m.putIntegration,
      { integration: { ...integration("crm"), displayName: "real" } },
      admin(b),
    );
    expect((await d.environments.unary(m.getIntegration, { name: "crm" }, admin(a))).integration?.displayName).toBe(
      "sandbox",
    );
    expect((await d.environments.unary(m.getIntegration, { name: "crm" }, admin(b))).integration?.displayName).toBe(
      "real",
    );
  });

  it("when one environment is deleted, then the others keep their database, data and queued jobs", async () => {
    const [doomed, kept] = [randomEnvironmentName(), randomEnvironmentName()];
    const keptJobs: Record<string, string> = {};
    for (const name of [doomed, kept]) {
      await d.environments.unary(m.createEnvironment, {}, admin(name));
      await d.environments.unary(m.putIntegration, { integration: integration("crm") }, admin(name));
      for (const kind of queueKinds) {
        const id = await jobOn(name, kind);
        if (name === kept) keptJobs[kind] = id;
      }
    }
    const prefix = d.server.config.ROOMKEY_QUEUE_PREFIX;

    await d.environments.unary(m.deleteEnvironment, {}, admin(doomed));

    const dbs = await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX);
    expect(dbs).not.toContain(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${doomed}`);
    expect(dbs).toContain(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${kept}`);
    expect((await d.environments.unary(m.getIntegration, { name: "crm" }, admin(kept))).integration?.name).toBe("crm");
    expect(await redisKeys(d.redis, `${prefix}:{${doomed}}.*`)).toEqual([]);
    for (const kind of queueKinds) {
      const queue = new Queue(`{${kept}}.${kind}`, { connection: d.redis, prefix });
      const job = await queue.getJob(keptJobs[kind] ?? "");
      expect(job?.data, kind).toEqual({ marker: kept });
      expect(await job?.getState(), kind).toBe("delayed");
      await queue.close();
    }
    for (const name of ["development", "staging", "production"]) {
      expect((await d.environments.unary(m.getEnvironment, {}, admin(name))).environment?.name).toBe(name);
    }
  });
});
