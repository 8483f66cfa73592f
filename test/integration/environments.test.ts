import { Code, ConnectError } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { queueKinds } from "../../src/queue/queue-names.js";
import { connectClient, grpcDetails, grpcFailure, headersFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, databasesOf, redisKeys, startDeployment } from "../helpers/server.js";

let d: Deployment;

beforeAll(async () => {
  d = await startDeployment();
});

afterAll(() => d.stop());

const admin = (env: string) => d.admin(env);
const m = EnvironmentService.method;

async function createEnvironment(name = randomEnvironmentName()) {
  await d.environments.unary(m.createEnvironment, { displayName: `Test ${name}` }, admin(name));
  return name;
}

function apiKeyIntegration(name: string, url = "https://provider.example/v1/me") {
  return {
    name,
    displayName: name,
    authType: AuthType.API_KEY,
    credentialCheck: { url, placement: CredentialPlacement.HEADER, parameterName: "X-Api-Key", accountIdPath: "id" },
  };
}

describe("EnvironmentService over native gRPC", () => {
  it("when the server starts, then the three default environments exist with their databases", async () => {
    const list = await d.environments.unary(m.listEnvironments, {}, admin("development"));
    expect(list.environments.map((e) => e.name)).toEqual(["development", "production", "staging"]);
    expect(list.environments.every((e) => e.builtIn)).toBe(true);
    const dbs = await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX);
    for (const name of ["development", "staging", "production"]) {
      expect(dbs).toContain(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`);
    }
  });

  it("when an environment is created, then it can be read with defaults filled in and has its database", async () => {
    const name = randomEnvironmentName();
    const created = await d.environments.unary(
      m.createEnvironment,
      { displayName: "QA", description: "for the QA team", settings: { oauthRefreshMargin: { seconds: 300n } } },
      admin(name),
    );
    expect(created.environment?.name).toBe(name);
    const got = await d.environments.unary(m.getEnvironment, {}, admin(name));
    expect(got.environment?.displayName).toBe("QA");
    expect(got.environment?.settings?.oauthRefreshMargin?.seconds).toBe(300n);
    expect(got.environment?.settings?.tokenRetention?.seconds).toBe(30n * 86400n);
    expect(got.environment?.builtIn).toBe(false);
    expect(await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX)).toContain(
      `${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`,
    );
  });

  it("when an environment is created twice, then the second is ALREADY_EXISTS", async () => {
    const name = await createEnvironment();
    const error = await grpcFailure(d.environments.unary(m.createEnvironment, {}, admin(name)));
    expect(error.code).toBe(status.ALREADY_EXISTS);
    expect(grpcDetails(error).errorInfo?.reason).toBe("ENVIRONMENT_EXISTS");
  });

  it("when an environment is updated with a field mask, then only the named fields change", async () => {
    const name = await createEnvironment();
    const updated = await d.environments.unary(
      m.updateEnvironment,
      {
        environment: {
          displayName: "Renamed",
          description: "ignored",
          settings: { tokenRetention: { seconds: 7200n } },
        },
        updateMask: { paths: ["display_name", "settings.token_retention"] },
      },
      admin(name),
    );
    expect(updated.environment?.displayName).toBe("Renamed");
    expect(updated.environment?.description).toBe("");
    expect(updated.environment?.settings?.tokenRetention?.seconds).toBe(7200n);
    expect(updated.environment?.settings?.oauthRefreshMargin?.seconds).toBe(600n);
    const reread = await d.environments.unary(m.getEnvironment, {}, admin(name));
    expect(reread.environment?.displayName).toBe("Renamed");
  });

  it("when the update mask names an unknown or empty path, then INVALID_ARGUMENT names update_mask", async () => {
    const name = await createEnvironment();
    for (const paths of [["name"], [], ["settings.nope"]]) {
      const error = await grpcFailure(
        d.environments.unary(m.updateEnvironment, { environment: {}, updateMask: { paths } }, admin(name)),
      );
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("update_mask");
    }
  });

  it("when a setting is out of range, then INVALID_ARGUMENT names the field", async () => {
    const error = await grpcFailure(
      d.environments.unary(
        m.createEnvironment,
        { settings: { oauthRefreshMargin: { seconds: 5n } } },
        admin(randomEnvironmentName()),
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field)).toEqual([
      "settings.oauth_refresh_margin",
    ]);
  });

  it("when environments are listed in pages, then every one appears once and the last page has no token", async () => {
    const names = await Promise.all([1, 2, 3].map(() => createEnvironment()));
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await d.environments.unary(m.listEnvironments, { pageSize: 2, pageToken }, admin("development"));
      expect(page.environments.length).toBeLessThanOrEqual(2);
      seen.push(...page.environments.map((e) => e.name));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "" && pages < 100);
    expect(new Set(seen).size).toBe(seen.length);
    for (const name of names) expect(seen).toContain(name);
    expect([...seen].sort()).toEqual(seen);
  });

  it("when a page token is forged, then INVALID_ARGUMENT names page_token", async () => {
    const error = await grpcFailure(
      d.environments.unary(m.listEnvironments, { pageToken: "bm9wZQ" }, admin("development")),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("page_token");
  });

  it("when an environment is deleted, then its database, queues and record are gone", async () => {
    const name = await createEnvironment();
    await d.environments.unary(m.putIntegration, { integration: apiKeyIntegration("crm") }, admin(name));
    // A job on each of its queues, as the workers would have.
    const { Queue } = await import("bullmq");
    for (const kind of queueKinds) {
      const queue = new Queue(`{${name}}.${kind}`, {
        connection: d.redis,
        prefix: d.server.config.ROOMKEY_QUEUE_PREFIX,
      });
      await queue.add("probe", {}, { delay: 60_000 });
      await queue.close();
    }
    const before = await redisKeys(d.redis, `${d.server.config.ROOMKEY_QUEUE_PREFIX}:{${name}}.*`);
    expect(before.length).toBeGreaterThan(0);

    await d.environments.unary(m.deleteEnvironment, {}, admin(name));

    expect(await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX)).not.toContain(
      `${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`,
    );
    expect(await redisKeys(d.redis, `${d.server.config.ROOMKEY_QUEUE_PREFIX}:{${name}}.*`)).toEqual([]);
    const record = await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_control`)
      .collection("environments")
      .findOne({ _id: name as never });
    expect(record).toBeNull();
    const error = await grpcFailure(d.environments.unary(m.getEnvironment, {}, admin(name)));
    expect(error.code).toBe(status.NOT_FOUND);
    expect(grpcDetails(error).errorInfo?.reason).toBe("ENVIRONMENT_NOT_FOUND");
  });

  it("when a delete was interrupted, then calling DeleteEnvironment again finishes it", async () => {
    const name = await createEnvironment();
    // As a crash after the first step of a delete leaves it.
    await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_control`)
      .collection<{ _id: string }>("environments")
      .updateOne({ _id: name }, { $set: { state: "deleting" }, $inc: { version: 1 } });
    await d.environments.unary(m.deleteEnvironment, {}, admin(name));
    expect(await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX)).not.toContain(
      `${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`,
    );
    const again = await grpcFailure(d.environments.unary(m.deleteEnvironment, {}, admin(name)));
    expect(again.code).toBe(status.NOT_FOUND);
  });

  it("when a deleted environment is created again, then nothing of the old one comes back", async () => {
    const name = await createEnvironment();
    await d.environments.unary(m.putIntegration, { integration: apiKeyIntegration("crm") }, admin(name));
    await d.environments.unary(m.deleteEnvironment, {}, admin(name));
    // A replica that had not heard of the deletion writes to the dropped database.
    await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`)
      .collection<{ _id: string }>("integrations")
      .insertOne({ _id: "stale" });
    await d.environments.unary(m.createEnvironment, {}, admin(name));
    expect((await d.environments.unary(m.listIntegrations, {}, admin(name))).integrations).toEqual([]);
  });

  it("when an environment has an active account, then delete refuses unless forced", async () => {
    const name = await createEnvironment();
    await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`)
      .collection("accounts")
      .insertOne({ integration: "crm", status: "active" });
    const error = await grpcFailure(d.environments.unary(m.deleteEnvironment, {}, admin(name)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    const info = grpcDetails(error).errorInfo;
    expect(info?.reason).toBe("ENVIRONMENT_HAS_ACTIVE_ACCOUNTS");
    expect(info?.metadata.active_accounts).toBe("1");
    expect((await d.environments.unary(m.getEnvironment, {}, admin(name))).environment?.name).toBe(name);

    await d.environments.unary(m.deleteEnvironment, { force: true }, admin(name));
    expect((await grpcFailure(d.environments.unary(m.getEnvironment, {}, admin(name)))).code).toBe(status.NOT_FOUND);
  });
});

describe("integrations", () => {
  it("when an OAuth2 integration is put, then its client secret is stored encrypted and never returned", async () => {
    const name = await createEnvironment();
    const secret = "super-secret-client-value-123";
    const put = await d.environments.unary(
      m.putIntegration,
      {
        integration: {
          name: "hubspot",
          authType: AuthType.OAUTH2,
          oauth2: {
            authorizationUrl: "https://app.hubspot.example/oauth/authorize",
            tokenUrl: "https://api.hubspot.example/oauth/v1/token",
            clientId: "client-1",
            clientSecret: secret,
            scopes: ["crm.objects.read"],
            pkce: true,
          },
          credentialCheck: { url: "https://api.hubspot.example/account", accountIdPath: "portalId" },
        },
      },
      admin(name),
    );
    expect(put.created).toBe(true);
    expect(put.integration?.oauth2?.clientSecret).toBe("");
    expect(put.integration?.oauth2?.clientSecretSet).toBe(true);
    const got = await d.environments.unary(m.getIntegration, { name: "hubspot" }, admin(name));
    expect(got.integration?.oauth2?.clientSecret).toBe("");
    expect(got.integration?.oauth2?.pkce).toBe(true);

    const raw = await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`)
      .collection("integrations")
      .findOne({ _id: "hubspot" as never });
    expect(JSON.stringify(raw)).not.toContain(secret);
    expect(raw?.oauth2?.sealedClientSecret).toMatch(/^v1\./);

    // A replacement without a secret keeps the stored one.
    const stored = got.integration;
    if (!stored?.oauth2) throw new Error("the integration was not returned");
    stored.displayName = "HubSpot";
    stored.oauth2.clientSecret = "";
    const again = await d.environments.unary(m.putIntegration, { integration: stored }, admin(name));
    expect(again.created).toBe(false);
    expect(again.integration?.displayName).toBe("HubSpot");
    expect(again.integration?.oauth2?.clientSecretSet).toBe(true);
  });

  it("when integrations are listed, got and deleted, then each answers as expected", async () => {
    const name = await createEnvironment();
    for (const integration of ["a-crm", "b-crm", "c-crm"]) {
      await d.environments.unary(m.putIntegration, { integration: apiKeyIntegration(integration) }, admin(name));
    }
    const first = await d.environments.unary(m.listIntegrations, { pageSize: 2 }, admin(name));
    expect(first.integrations.map((i) => i.name)).toEqual(["a-crm", "b-crm"]);
    const second = await d.environments.unary(
      m.listIntegrations,
      { pageSize: 2, pageToken: first.nextPageToken },
      admin(name),
    );
    expect(second.integrations.map((i) => i.name)).toEqual(["c-crm"]);
    expect(second.nextPageToken).toBe("");

    await d.environments.unary(m.deleteIntegration, { name: "b-crm" }, admin(name));
    const missing = await grpcFailure(d.environments.unary(m.getIntegration, { name: "b-crm" }, admin(name)));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(grpcDetails(missing).errorInfo?.reason).toBe("INTEGRATION_NOT_FOUND");
    const again = await grpcFailure(d.environments.unary(m.deleteIntegration, { name: "b-crm" }, admin(name)));
    expect(again.code).toBe(status.NOT_FOUND);
  });

  it("when an integration has active accounts, then delete refuses unless forced", async () => {
    const name = await createEnvironment();
    await d.environments.unary(m.putIntegration, { integration: apiKeyIntegration("crm") }, admin(name));
    await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${name}`)
      .collection("accounts")
      .insertOne({ integration: "crm", status: "active" });
    const error = await grpcFailure(d.environments.unary(m.deleteIntegration, { name: "crm" }, admin(name)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(error).errorInfo?.reason).toBe("INTEGRATION_HAS_ACTIVE_ACCOUNTS");
    await d.environments.unary(m.deleteIntegration, { name: "crm", force: true }, admin(name));
  });

  it("when an integration is invalid, then INVALID_ARGUMENT lists every offending field", async () => {
    const name = await createEnvironment();
    const error = await grpcFailure(
      d.environments.unary(
        m.putIntegration,
        {
          integration: {
            name: "Bad Name",
            authType: AuthType.OAUTH2,
            credentialCheck: { url: "ftp://nope.example" },
          },
        },
        admin(name),
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    const fields = grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field) ?? [];
    expect(fields).toEqual(
      expect.arrayContaining(["integration.name", "integration.credential_check.url", "integration"]),
    );
  });

  it("when HEADER placement has no parameter name, then INVALID_ARGUMENT names it", async () => {
    const name = await createEnvironment();
    const error = await grpcFailure(
      d.environments.unary(
        m.putIntegration,
        {
          integration: {
            ...apiKeyIntegration("crm"),
            credentialCheck: { url: "https://x.example", placement: CredentialPlacement.HEADER },
          },
        },
        admin(name),
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe(
      "integration.credential_check.parameter_name",
    );
  });
});

describe("EnvironmentService over Connect and gRPC-Web", () => {
  for (const protocol of ["connect", "grpc-web"] as const) {
    it(`when called over ${protocol}, then the same handlers answer, errors included`, async () => {
      const client = connectClient(EnvironmentService, d.server.app.httpPort, protocol);
      const name = randomEnvironmentName();
      await client.createEnvironment({ displayName: protocol }, { headers: headersFor(name, d.server.adminKey) });
      const got = await client.getEnvironment({}, { headers: headersFor(name, d.server.adminKey) });
      expect(got.environment?.displayName).toBe(protocol);
      const error = await client
        .getIntegration({ name: "nope" }, { headers: headersFor(name, d.server.adminKey) })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.NotFound);
      expect((error as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("INTEGRATION_NOT_FOUND");
    });
  }
});
