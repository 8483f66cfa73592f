import type { MessageShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcDetails, grpcFailure } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const a = AccountService.method;
type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;
const ms = (timestamp: Timestamp | undefined) => (timestamp ? timestampMs(timestamp) : 0);

let d: Deployment;
let oauth: OAuthProvider;
let keys: ApiKeyProvider;
let env: string;
const redirectUri = "https://app.example/oauth/callback";

beforeAll(async () => {
  oauth = await startOAuthProvider();
  keys = await startApiKeyProvider();
  d = await startDeployment(
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
      ROOMKEY_REFRESH_SWEEP_MS: "1000",
    }),
  );
  env = await newEnvironment();
});

afterAll(async () => {
  await d.stop();
  await oauth.stop();
  await keys.stop();
});

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    {
      integration: {
        name: "crm",
        authType: AuthType.OAUTH2,
        oauth2: {
          authorizationUrl: `${oauth.issuer}/authorize`,
          tokenUrl: `${oauth.issuer}/token`,
          clientId: "roomkey-test",
          clientSecret: "client-secret-1",
          scopes: ["openid", "contacts.read"],
          pkce: true,
        },
        credentialCheck: {
          url: `${oauth.issuer}/userinfo`,
          placement: CredentialPlacement.BEARER,
          accountIdPath: "sub",
          accountNamePath: "name",
        },
      },
    },
    d.admin(name),
  );
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    {
      integration: {
        name: "keyed",
        authType: AuthType.API_KEY,
        credentialCheck: { url: `${keys.url}/me`, placement: CredentialPlacement.BEARER, accountIdPath: "data.id" },
      },
    },
    d.admin(name),
  );
  return name;
}

async function start(environment: string, extra: { accountId?: string } = {}) {
  return d.accounts.unary(
    a.startOAuthConnection,
    { integration: "crm", tenantId: "tenant-1", redirectUri, labels: { source: "test" }, ...extra },
    d.admin(environment),
  );
}

async function statusOf(environment: string, id: string) {
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

async function settled(environment: string, id: string, timeoutMs = 10_000) {
  await eventually(
    async () => (await statusOf(environment, id))?.status !== AccountStatus.CONNECTING,
    timeoutMs,
    `account ${id} leaves CONNECTING`,
  );
  return statusOf(environment, id);
}

/** A new OAuth account through the whole flow, ACTIVE. */
async function connected(environment: string): Promise<string> {
  const started = await start(environment);
  const { code, state } = await oauth.authorize(started.authorizationUrl);
  const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(environment));
  const done = await settled(environment, account?.id ?? "");
  expect(done?.status).toBe(AccountStatus.ACTIVE);
  return account?.id ?? "";
}

function accountsOf(environment: string) {
  return d.mongo
    .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${environment}`)
    .collection<{ _id: string; credentials: Record<string, string>; credentialsVersion: number }>("accounts");
}

async function accessToken(environment: string, id: string) {
  const response = await d.accounts.unary(a.getAccountCredentials, { id }, d.admin(environment));
  if (response.credential.case !== "oauth2") throw new Error(`not an OAuth credential: ${response.credential.case}`);
  return response.credential.value;
}

describe("the OAuth 2.0 connection", () => {
  it("when a customer authorizes, then the code is exchanged once (with PKCE) and the account turns ACTIVE with the provider's identity", async () => {
    const started = await start(env);
    const url = new URL(started.authorizationUrl);
    expect(url.origin + url.pathname).toBe(`${oauth.issuer}/authorize`);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      response_type: "code",
      client_id: "roomkey-test",
      redirect_uri: redirectUri,
      scope: "openid contacts.read",
      state: started.state,
      code_challenge_method: "S256",
    });
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ms(started.stateExpireTime) - Date.now()).toBeGreaterThan(9 * 60_000);

    const exchangesBefore = oauth.calls("authorization_code");
    const { code, state } = await oauth.authorize(started.authorizationUrl);
    expect(state).toBe(started.state);
    const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(env));
    expect(account?.status).toBe(AccountStatus.CONNECTING);
    const done = await settled(env, account?.id ?? "");
    expect(done).toMatchObject({
      status: AccountStatus.ACTIVE,
      remoteId: "johndoe",
      remoteName: "John Doe",
      tenantId: "tenant-1",
      labels: { source: "test" },
      authType: AuthType.OAUTH2,
    });
    expect(oauth.calls("authorization_code") - exchangesBefore).toBe(1);
    const credential = await accessToken(env, account?.id ?? "");
    expect(credential.tokenType).toBe("Bearer");
    expect(credential.accessToken.split(".")).toHaveLength(3);
    expect(ms(credential.expireTime) - Date.now()).toBeGreaterThan(50 * 60_000);
    const stored = await accountsOf(env).findOne({ _id: account?.id ?? "" });
    expect(JSON.stringify(stored)).not.toContain(credential.accessToken);
    expect(Object.keys(stored?.credentials ?? {}).sort()).toEqual(["access_token", "refresh_token"]);

    // A retry of the completion gets the same account and exchanges nothing; another code is refused.
    const again = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(env));
    expect(again.account?.id).toBe(account?.id);
    const other = await grpcFailure(
      d.accounts.unary(a.completeOAuthConnection, { state, code: "another" }, d.admin(env)),
    );
    expect(other.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(other).badRequest?.fieldViolations[0]?.field).toBe("state");
    expect(oauth.calls("authorization_code") - exchangesBefore).toBe(1);
  });

  it("when the state is unknown, then INVALID_ARGUMENT names state; when the code was never issued, then the account fails with invalid_grant", async () => {
    const unknown = await grpcFailure(
      d.accounts.unary(a.completeOAuthConnection, { state: "made-up", code: "c" }, d.admin(env)),
    );
    expect(unknown.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(unknown).badRequest?.fieldViolations[0]?.field).toBe("state");

    const started = await start(env);
    const before = oauth.calls("authorization_code");
    const { account } = await d.accounts.unary(
      a.completeOAuthConnection,
      { state: started.state, code: "never-issued" },
      d.admin(env),
    );
    const failed = await settled(env, account?.id ?? "");
    expect(failed?.status).toBe(AccountStatus.FAILED);
    // The provider checks PKCE first: a code it never issued has no challenge either.
    expect(failed?.statusReason).toMatch(/^the token endpoint answered 400: invalid_(grant|request): /);
    expect(oauth.calls("authorization_code") - before).toBe(1);
  });

  it("when StartOAuthConnection names an API key integration, then INVALID_ARGUMENT names integration", async () => {
    const error = await grpcFailure(
      d.accounts.unary(a.startOAuthConnection, { integration: "keyed", tenantId: "t", redirectUri }, d.admin(env)),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("integration");
  });
});

describe("keeping OAuth credentials fresh", () => {
  it("when 20 callers ask for credentials that expire within the margin, then the provider sees one refresh and all get the new token", async () => {
    oauth.setTokenLifetime(3600);
    const id = await connected(env);
    const old = await accessToken(env, id);
    // From now on tokens expire within the 10-minute margin: the next read refreshes first.
    await accountsOf(env).updateOne({ _id: id }, { $set: { credentialsExpireTime: new Date(Date.now() + 60_000) } });
    const refreshesBefore = oauth.calls("refresh_token");
    const tokens = await Promise.all(Array.from({ length: 20 }, () => accessToken(env, id)));
    expect(oauth.calls("refresh_token") - refreshesBefore).toBe(1);
    const distinct = new Set(tokens.map((t) => t.accessToken));
    expect(distinct.size).toBe(1);
    expect([...distinct][0]).not.toBe(old.accessToken);
    expect(ms(tokens[0]?.expireTime) - Date.now()).toBeGreaterThan(50 * 60_000);
  });

  it("when the provider cannot refresh a token that still works, then GetAccountCredentials hands out that token after a short wait", async () => {
    oauth.setTokenLifetime(3600);
    const id = await connected(env);
    const old = await accessToken(env, id);
    // Three minutes left: within the margin, so a read refreshes first, but still usable.
    await accountsOf(env).updateOne({ _id: id }, { $set: { credentialsExpireTime: new Date(Date.now() + 180_000) } });
    oauth.queue(...Array.from({ length: 500 }, () => ({ status: 503, body: { error: "temporarily_unavailable" } })));
    try {
      const started = Date.now();
      const got = await accessToken(env, id);
      const waited = Date.now() - started;
      console.log(`with the token endpoint down, GetAccountCredentials answered the current token after ${waited} ms`);
      expect(got.accessToken).toBe(old.accessToken);
      expect(ms(got.expireTime) - Date.now()).toBeLessThan(180_000);
      expect((await statusOf(env, id))?.status).toBe(AccountStatus.ACTIVE);
    } finally {
      oauth.clearQueue();
    }
    // The provider is back: the next read (or the sweep) gets a new token.
    await eventually(
      async () => (await accessToken(env, id)).accessToken !== old.accessToken,
      10_000,
      "a new access token",
    );
  });

  it("when a token nears expiry, then the sweep refreshes it with the rotated refresh token and nobody asks", async () => {
    oauth.setTokenLifetime(3600);
    const id = await connected(env);
    const before = await accountsOf(env).findOne({ _id: id });
    await accountsOf(env).updateOne({ _id: id }, { $set: { credentialsExpireTime: new Date(Date.now() + 60_000) } });
    await eventually(
      async () =>
        ((await accountsOf(env).findOne({ _id: id }))?.credentialsVersion ?? 0) > (before?.credentialsVersion ?? 0),
      10_000,
      "the sweep refreshes the account",
    );
    const after = await accountsOf(env).findOne({ _id: id });
    expect(after?.credentials.refresh_token).not.toBe(before?.credentials.refresh_token);
    expect((await statusOf(env, id))?.lastRefreshTime).toBeDefined();
    // The rotated refresh token works: a forced refresh succeeds.
    const refreshed = await d.accounts.unary(a.refreshAccountCredentials, { id }, d.admin(env));
    expect(refreshed.account?.status).toBe(AccountStatus.ACTIVE);
  });

  it("when the provider refuses the refresh (invalid_grant), then the account needs re-authorization, a watcher sees it, and re-authorizing brings it back", async () => {
    const id = await connected(env);
    const channel = `${d.server.config.ROOMKEY_QUEUE_PREFIX}:{events}:accounts.${env}`;
    const stream = d.accounts.stream(a.watchAccounts, { accountIds: [id] }, d.admin(env));
    const events: WatchEvent[] = [];
    stream.on("data", (e: WatchEvent) => events.push(e));
    stream.on("error", () => undefined);
    await eventually(
      async () => Number(((await d.redis.pubsub("NUMSUB", channel)) as [string, number])[1]) > 0,
      5_000,
      "subscribed",
    );
    oauth.revokeAll();
    const error = await grpcFailure(d.accounts.unary(a.refreshAccountCredentials, { id }, d.admin(env)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(error).errorInfo?.reason).toBe("ACCOUNT_NOT_ACTIVE");
    const account = await statusOf(env, id);
    expect(account?.status).toBe(AccountStatus.NEEDS_REAUTH);
    expect(account?.statusReason).toContain("invalid_grant");
    await eventually(
      () => events.some((e) => e.account?.status === AccountStatus.NEEDS_REAUTH),
      5_000,
      "NEEDS_REAUTH on the watch",
    );
    expect(events.find((e) => e.account?.status === AccountStatus.NEEDS_REAUTH)?.previousStatus).toBe(
      AccountStatus.ACTIVE,
    );

    const again = await start(env, { accountId: id });
    const { code, state } = await oauth.authorize(again.authorizationUrl);
    const { account: reauthorized } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(env));
    expect(reauthorized?.id).toBe(id);
    expect((await settled(env, id))?.status).toBe(AccountStatus.ACTIVE);
    await eventually(
      () => events.some((e) => e.account?.status === AccountStatus.ACTIVE),
      5_000,
      "ACTIVE again on the watch",
    );
    stream.cancel();
  });

  it("when RefreshAccountCredentials names an API key account, then INVALID_ARGUMENT", async () => {
    keys.allow("sk_refresh_test", { id: "r1", name: "R" });
    const { account } = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: "sk_refresh_test" } } },
      d.admin(env),
    );
    const error = await grpcFailure(
      d.accounts.unary(a.refreshAccountCredentials, { id: account?.id ?? "" }, d.admin(env)),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
  });
});
