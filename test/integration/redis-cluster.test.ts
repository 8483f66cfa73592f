import { status } from "@grpc/grpc-js";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcClient, grpcDetails, metadataFor, refusal } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type OwnRedisCluster, ownRedisCluster } from "../helpers/redis-cluster.js";
import { dropDeployment, eventually, startTestServer, type TestServer, testConfig } from "../helpers/server.js";

/**
 * roomkey on a real 3-master Redis Cluster (redis-server in cluster mode,
 * started by the test): BullMQ needs every key of a queue in one slot, and the
 * cluster refuses (CROSSSLOT) any script or MULTI whose keys are not.
 */
const e = EnvironmentService.method;
const t = TokenService.method;
const a = AccountService.method;
const redirectUri = "https://app.example/oauth/callback";

let cluster: OwnRedisCluster;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;
let config: Config;
let first: TestServer;
let second: TestServer;

beforeAll(async () => {
  cluster = await ownRedisCluster(3);
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  config = testConfig({
    // Not used for a cluster but for its credentials: nothing listens there.
    REDIS_URL: "redis://127.0.0.1:1",
    REDIS_CLUSTER_NODES: cluster.nodes.join(","),
    ROOMKEY_PROVIDER_RETRY_MS: "200",
  });
  // One process with workers, a second API replica.
  first = await startTestServer(config, "all");
  second = await startTestServer(config, "api");
}, 60_000);

afterAll(async () => {
  await second?.stop();
  await first?.stop();
  await oauth?.stop();
  await keys?.stop();
  if (config) await dropDeployment(config);
  await cluster?.dispose();
});

const admin = (environment: string) => metadataFor(environment, config.ROOMKEY_ADMIN_KEY);

describe("on a Redis Cluster", () => {
  it("when environments are created, then each one's queue keys share a slot and environments spread over the masters", async () => {
    const environments = grpcClient(EnvironmentService, first.grpcAddress);
    const accounts = grpcClient(AccountService, first.grpcAddress);
    const names = Array.from({ length: 8 }, () => randomEnvironmentName());
    try {
      for (const name of names) await environments.unary(e.createEnvironment, {}, admin(name));
      // Jobs in every environment's queues: each account's handshake.
      for (const name of names) {
        await environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, admin(name));
        keys.allow(`sk_${name}`, { id: `remote-${name}`, name });
        await accounts.unary(
          a.connectAccount,
          { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: `sk_${name}` } } },
          admin(name),
        );
      }
      await eventually(() => names.every((n) => first.app.servedEnvironments().includes(n)), 10_000, "served");
      const slots = new Map<string, Set<number>>();
      for (const node of cluster.client.nodes("master")) {
        let cursor = "0";
        do {
          const [next, batch] = await node.scan(cursor, "MATCH", `${config.ROOMKEY_QUEUE_PREFIX}:{*`, "COUNT", 1000);
          cursor = next;
          for (const key of batch) {
            const environment = /^[^:]+:\{([^}]+)\}\./.exec(key)?.[1];
            if (!environment) continue;
            const slot = Number(await cluster.client.cluster("KEYSLOT", key));
            slots.set(environment, (slots.get(environment) ?? new Set()).add(slot));
          }
        } while (cursor !== "0");
      }
      for (const name of names) expect(slots.get(name)?.size, name).toBe(1);
      // Which master holds each environment's slot: not all on one.
      const owners = new Set<string>();
      for (const name of names) {
        const slot = [...(slots.get(name) ?? [])][0] ?? -1;
        const ranges = await cluster.client.cluster("SLOTS");
        const range = ranges.find(([from, to]) => slot >= from && slot <= to);
        owners.add(String(range?.[2]?.[1]));
      }
      console.log(`${names.length} environments' queues on ${owners.size} of 3 masters, one slot each`);
      expect(owners.size).toBeGreaterThan(1);
    } finally {
      environments.close();
      accounts.close();
    }
  });

  it("when a token is revoked through one replica, then the other refuses it within a second", async () => {
    const name = randomEnvironmentName();
    const environments = [first, second].map((s) => grpcClient(EnvironmentService, s.grpcAddress));
    const tokens = grpcClient(TokenService, first.grpcAddress);
    try {
      await environments[0]?.unary(e.createEnvironment, {}, admin(name));
      const made = await tokens.unary(t.createToken, { name: "ci", scopes: ["environment:read"] }, admin(name));
      const bearer = metadataFor(name, made.secret);
      // Both replicas know and have cached it.
      for (const client of environments) {
        await eventually(
          async () => (await client?.unary(e.getEnvironment, {}, bearer).catch(() => undefined)) !== undefined,
          5_000,
          "the token opens the environment",
        );
      }
      const revoked = Date.now();
      await tokens.unary(t.revokeToken, { id: made.token?.id ?? "" }, admin(name));
      const took = await eventually(
        async () => {
          // Still accepted: not yet (the poll goes on); refused: for the revocation, and nothing else.
          const error = await refusal(environments[1]?.unary(e.getEnvironment, {}, bearer));
          return error?.code === status.UNAUTHENTICATED && grpcDetails(error).errorInfo?.reason === "TOKEN_REVOKED";
        },
        1_000,
        "the other replica refuses it",
      );
      console.log(
        `revocation on the cluster reached the other replica within ${took} ms (${Date.now() - revoked} ms in all)`,
      );
    } finally {
      for (const client of environments) client.close();
      tokens.close();
    }
  });

  it("when an API key account connects and an OAuth account is refreshed by the rotation worker, then both work on the cluster", async () => {
    const name = randomEnvironmentName();
    const environments = grpcClient(EnvironmentService, first.grpcAddress);
    const accounts = grpcClient(AccountService, second.grpcAddress);
    try {
      await environments.unary(e.createEnvironment, {}, admin(name));
      await environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, admin(name));
      await environments.unary(
        e.putIntegration,
        { integration: oauthIntegration("crm", oauth.issuer, "client-secret-1") },
        admin(name),
      );
      await eventually(() => first.app.servedEnvironments().includes(name), 10_000, "served");
      const status = async (id: string) => (await accounts.unary(a.getAccount, { id }, admin(name))).account?.status;

      // A handshake on the environment's handshake queue.
      keys.allow("sk_cluster", { id: "remote-cluster", name: "Cluster" });
      const keyed = await accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: "sk_cluster" } } },
        admin(name),
      );
      await eventually(async () => (await status(keyed.account?.id ?? "")) === AccountStatus.ACTIVE, 10_000, "ACTIVE");

      // An OAuth account (a code exchange on the handshake queue), then a refresh job on the rotation queue.
      const started = await accounts.unary(
        a.startOAuthConnection,
        { integration: "crm", tenantId: "t", redirectUri },
        admin(name),
      );
      const { code, state } = await oauth.authorize(started.authorizationUrl);
      const { account } = await accounts.unary(a.completeOAuthConnection, { state, code }, admin(name));
      const id = account?.id ?? "";
      await eventually(async () => (await status(id)) === AccountStatus.ACTIVE, 10_000, "the OAuth account ACTIVE");
      const mongo = new MongoClient(config.MONGODB_URL);
      try {
        const docs = mongo
          .db(`${config.ROOMKEY_DB_PREFIX}_env_${name}`)
          .collection<{ _id: string; credentialsVersion: number }>("accounts");
        const before = (await docs.findOne({ _id: id }))?.credentialsVersion ?? 0;
        // Expiring now: the account sweep queues its refresh, which the rotation worker runs.
        await docs.updateOne({ _id: id }, { $set: { credentialsExpireTime: new Date() } });
        expect(await first.app.runSweep(name, "sweep-accounts")).toMatchObject({ queued: 1 });
        await eventually(
          async () => ((await docs.findOne({ _id: id }))?.credentialsVersion ?? 0) > before,
          10_000,
          "the refresh stored new tokens",
        );
      } finally {
        await mongo.close();
      }
      expect(await status(id)).toBe(AccountStatus.ACTIVE);
    } finally {
      environments.close();
      accounts.close();
    }
  });
});
