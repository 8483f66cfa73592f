import type { MessageInitShape } from "@bufbuild/protobuf";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccountService,
  AccountStatus,
  type ConnectAccountRequestSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcClient, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import {
  capturedLogger,
  databasesOf,
  dropDeployment,
  eventually,
  startTestServer,
  type TestServer,
  testConfig,
} from "../helpers/server.js";

const a = AccountService.method;
const log = capturedLogger("trace");
let server: TestServer;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;

beforeAll(async () => {
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  server = await startTestServer(
    testConfig({ ROOMKEY_LOG_LEVEL: "trace", ROOMKEY_PROVIDER_RETRY_MS: "50" }),
    "all",
    log.logger,
  );
});

afterAll(async () => {
  await server.stop();
  await dropDeployment(server.config);
  await keys.stop();
  await oauth.stop();
});

describe("account credentials never leave GetAccountCredentials", () => {
  it("when accounts connect, fail, retry, refresh and disconnect with every log at trace level, then no credential is in any log line, error or stored document", async () => {
    const accounts = grpcClient(AccountService, server.grpcAddress);
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    const admin = metadataFor("staging", server.adminKey);
    const clientSecret = `client-secret-${Math.random().toString(36).slice(2)}`;
    await environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: apiKeyIntegration("keyed", keys.url),
      },
      admin,
    );
    await environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: {
          name: "basic",
          authType: AuthType.BASIC,
          credentialCheck: { url: `${keys.url}/me`, placement: CredentialPlacement.BASIC, accountIdPath: "data.id" },
        },
      },
      admin,
    );
    await environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: oauthIntegration("crm", oauth.issuer, clientSecret),
      },
      admin,
    );
    const secrets = [clientSecret];
    const errors: string[] = [];
    const settled = async (id: string) => {
      await eventually(
        async () => (await accounts.unary(a.getAccount, { id }, admin)).account?.status !== AccountStatus.CONNECTING,
        10_000,
        "the handshake ends",
      );
      return (await accounts.unary(a.getAccount, { id }, admin)).account;
    };
    type Credential = MessageInitShape<typeof ConnectAccountRequestSchema>["credential"];
    const connect = async (credential: Credential) => {
      const integration = credential?.case === "basic" ? "basic" : "keyed";
      const { account } = await accounts.unary(a.connectAccount, { integration, tenantId: "t", credential }, admin);
      return account?.id ?? "";
    };

    // A good key (after a 503 and a dropped connection), a refused key, basic credentials.
    const good = `sk_live_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const bad = `sk_live_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const password = `pw-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    secrets.push(good, bad, password);
    keys.allow(good, { id: "remote-good", name: "Good" });
    keys.allow(`someone:${password}`, { id: "remote-basic", name: "Basic" });
    keys.queue({ kind: "status", status: 503 }, { kind: "drop" });
    const goodId = await connect({ case: "apiKey", value: { key: good } });
    expect((await settled(goodId))?.status).toBe(AccountStatus.ACTIVE);
    const badId = await connect({ case: "apiKey", value: { key: bad } });
    expect((await settled(badId))?.status).toBe(AccountStatus.FAILED);
    const basicId = await connect({ case: "basic", value: { username: "someone", password } });
    expect((await settled(basicId))?.status).toBe(AccountStatus.ACTIVE);
    const read = await accounts.unary(a.getAccountCredentials, { id: goodId }, admin);
    expect(read.credential.case === "apiKey" && read.credential.value.key).toBe(good);
    errors.push((await grpcFailure(accounts.unary(a.getAccountCredentials, { id: badId }, admin))).message);

    // An OAuth account: code exchange, a refresh, a refused refresh.
    const started = await accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t", redirectUri: "https://app.example/cb" },
      admin,
    );
    const { code, state } = await oauth.authorize(started.authorizationUrl);
    secrets.push(code, state);
    const { account } = await accounts.unary(a.completeOAuthConnection, { state, code }, admin);
    const oauthId = account?.id ?? "";
    expect((await settled(oauthId))?.status).toBe(AccountStatus.ACTIVE);
    const accessTokenOf = async () => {
      const got = await accounts.unary(a.getAccountCredentials, { id: oauthId }, admin);
      return got.credential.case === "oauth2" ? got.credential.value.accessToken : "";
    };
    secrets.push(await accessTokenOf());
    await accounts.unary(a.refreshAccountCredentials, { id: oauthId }, admin);
    secrets.push(await accessTokenOf());
    oauth.revokeAll();
    errors.push((await grpcFailure(accounts.unary(a.refreshAccountCredentials, { id: oauthId }, admin))).message);
    await accounts.unary(a.deleteAccount, { id: goodId }, admin);

    const mongo = new MongoClient(server.config.MONGODB_URL);
    const stored: string[] = [];
    for (const name of await databasesOf(mongo, server.config.ROOMKEY_DB_PREFIX)) {
      for (const collection of await mongo.db(name).listCollections({}, { nameOnly: true }).toArray()) {
        for (const doc of await mongo.db(name).collection(collection.name).find().toArray())
          stored.push(JSON.stringify(doc));
      }
    }
    await mongo.close();

    expect(secrets.every((s) => s.length >= 16)).toBe(true);
    expect(log.lines.length).toBeGreaterThan(10);
    expect(errors.join(" ")).toContain("needs_reauth");
    const haystacks = { logs: log.lines.map((line) => JSON.stringify(line)), errors, stored };
    for (const secret of secrets) {
      for (const [where, lines] of Object.entries(haystacks)) {
        // The whole value, or any 12 characters of it.
        for (const piece of [secret, secret.slice(0, 12), secret.slice(-12)]) {
          expect(
            lines.filter((line) => line.includes(piece)),
            `${where} holds part of a credential`,
          ).toEqual([]);
        }
      }
    }
    accounts.close();
    environments.close();
  });
});
