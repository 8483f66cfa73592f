/**
 * Connect sessions on real services (FerretDB, Redis, real sockets): what a
 * session secret opens and what it does not, expiry, single use, the wrong
 * environment, revocation on every replica, re-authorization in place (and a
 * failed one keeping the old credentials), RFC 9207 mix-up refusal, PKCE by
 * default, end users on accounts, and CORS on the Connect endpoints.
 */
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { ConnectSessionStatus } from "../../src/gen/roomkey/v1/connect_sessions_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type Deployment, eventually, startDeployment, startTestServer, testConfig } from "../helpers/server.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const a = AccountService.method;
const app = "https://app.example";

let d: Deployment;
let oauth: OAuthProvider;
let keys: ApiKeyProvider;
let hooks: WebhookReceiver;
let env: string;

beforeAll(async () => {
  oauth = await startOAuthProvider();
  keys = await startApiKeyProvider();
  hooks = await startWebhookReceiver();
  d = await startDeployment(
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
      ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
    }),
  );
  env = await newEnvironment();
}, 60_000);

afterAll(async () => {
  await d?.stop();
  await oauth?.stop();
  await keys?.stop();
  await hooks?.stop();
});

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
  for (const integration of [
    { ...apiKeyIntegration("keyed", keys.url), displayName: "Keyed CRM" },
    apiKeyIntegration("other", keys.url),
    { ...oauthIntegration("crm", oauth.issuer, "client-secret-1"), displayName: "OAuth CRM" },
  ]) {
    await d.environments.unary(EnvironmentService.method.putIntegration, { integration }, d.admin(name));
  }
  return name;
}

/** The test OAuth integration with some of its OAuth 2.0 settings changed. */
function oauthWith(name: string, extra: { issuer?: string; pkce?: boolean; disablePkce?: boolean }) {
  const integration = oauthIntegration(name, oauth.issuer, "client-secret-1");
  integration.oauth2 = { ...integration.oauth2, ...extra };
  return integration;
}

/** JSON of a response (int64 fields as strings). */
function text(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? String(v) : v));
}

const endUser = { id: "user-1", displayName: "Ada Lovelace", email: "ada@example.com", tags: ["plan:pro"] };

async function createSession(environment: string, extra: Record<string, unknown> = {}) {
  return d.accounts.unary(
    a.createConnectSession,
    { endUser, integrations: ["keyed", "crm"], allowedOrigins: [app], labels: { source: "connect" }, ...extra },
    d.admin(environment),
  );
}

async function settled(environment: string, id: string) {
  await eventually(
    async () =>
      (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account?.status !== AccountStatus.CONNECTING,
    10_000,
    `account ${id} leaves CONNECTING`,
  );
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

function reasonOf(error: ServiceError): string | undefined {
  return grpcDetails(error).errorInfo?.reason;
}

async function refused(promise: Promise<unknown>): Promise<{ code: number; reason?: string; message: string }> {
  const error = await grpcFailure(promise);
  return { code: error.code, reason: reasonOf(error), message: error.details };
}

describe("a connect session", () => {
  it("when made, then its secret is rkcs_<environment>_…, shown once, stored only as a hash, with a connect URL and a 30-minute default lifetime", async () => {
    const created = await createSession(env);
    expect(created.secret).toMatch(new RegExp(`^rkcs_${env}_[0-9A-Za-z]{54}$`));
    expect(created.connectUrl).toBe(
      `http://127.0.0.1:${d.server.app.httpPort}/connect?session=${encodeURIComponent(created.secret)}`,
    );
    const session = created.session;
    expect(session?.id).toMatch(/^cs_[0-9A-Za-z]{22}$/);
    expect(session?.status).toBe(ConnectSessionStatus.OPEN);
    expect(session?.tenantId).toBe("user-1");
    expect(session?.displayPrefix).toBe(`${created.secret.slice(0, `rkcs_${env}_`.length + 4)}…`);
    const lifetime = Number(session?.expireTime?.seconds) - Number(session?.createTime?.seconds);
    expect(lifetime).toBe(30 * 60);
    const stored = await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${env}`)
      .collection("connect_sessions")
      .findOne({ _id: session?.id as unknown as never });
    expect(JSON.stringify(stored)).not.toContain(created.secret.slice(-54));
    // Read back, it never carries the secret.
    const read = await d.accounts.unary(a.getConnectSession, { id: session?.id ?? "" }, d.admin(env));
    expect(text(read)).not.toContain(created.secret.slice(-54));
  });

  it("when CreateConnectSession asks for more than 24 hours, a return URL off its origins, or a non-origin, then INVALID_ARGUMENT names the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ lifetime: durationFromMs(25 * 3_600_000) }, "lifetime"],
      [{ returnUrl: "https://evil.example/done" }, "return_url"],
      [{ allowedOrigins: ["https://app.example/path"] }, "allowed_origins[0]"],
      [{ allowedOrigins: ["http://app.example"] }, "allowed_origins[0]"],
      [{ integrations: ["nope"] }, ""],
      [{ endUser: { id: "" } }, "end_user.id"],
    ];
    for (const [extra, field] of cases) {
      const error = await grpcFailure(createSession(env, extra));
      if (field === "") {
        expect(error.code).toBe(status.NOT_FOUND);
        continue;
      }
      expect(error.code, text(extra)).toBe(status.INVALID_ARGUMENT);
      expect(grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field)).toContain(field);
    }
  });

  it("when used, then it lists its integrations (names, display names, auth types, nothing else) and every other RPC is PERMISSION_DENIED with a reason", async () => {
    const { secret, session } = await createSession(env);
    const as = metadataFor(env, secret);
    const own = await d.accounts.unary(a.getConnectSession, {}, as);
    expect(own.session?.id).toBe(session?.id);
    expect(own.integrations.map((i) => [i.name, i.displayName, i.authType])).toEqual([
      ["keyed", "Keyed CRM", AuthType.API_KEY],
      ["crm", "OAuth CRM", AuthType.OAUTH2],
    ]);
    const shown = text(own);
    expect(shown).not.toContain("client-secret-1");
    expect(shown).not.toContain(oauth.issuer);
    expect(shown).not.toContain(keys.url);

    const clients = {
      "roomkey.v1.EnvironmentService": d.environments,
      "roomkey.v1.TokenService": d.tokens,
      "roomkey.v1.AccountService": d.accounts,
    } as const;
    const allowed = new Set([
      "GetConnectSession",
      "ConnectAccount",
      "StartOAuthConnection",
      "CompleteOAuthConnection",
      "GetAccount",
    ]);
    let checked = 0;
    for (const service of [EnvironmentService, TokenService, AccountService]) {
      const client = clients[service.typeName as keyof typeof clients];
      for (const method of service.methods) {
        if (allowed.has(method.name)) continue;
        const call =
          method.methodKind === "unary"
            ? client.unary(method as DescMethodUnary, {}, as)
            : new Promise((resolve, reject) => {
                const stream = d.accounts.stream(a.watchAccounts, {}, as);
                stream.on("data", resolve);
                stream.on("error", reject);
              });
        const error = await refused(call);
        expect([method.name, error.code, error.reason]).toEqual([
          method.name,
          status.PERMISSION_DENIED,
          "CONNECT_SESSION_NOT_ALLOWED",
        ]);
        expect(error.message).toContain("connect session");
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(30);
  });

  it("when it connects an API key, then the account carries its end user, tenant and labels; once ACTIVE the session is spent but still reads its account", async () => {
    keys.allow("key-session-1", { id: "remote-1", name: "Remote One" });
    const { secret, session } = await createSession(env);
    const as = metadataFor(env, secret);
    const notOffered = await refused(
      d.accounts.unary(
        a.connectAccount,
        { integration: "other", credential: { case: "apiKey", value: { key: "key-session-1" } } },
        as,
      ),
    );
    expect([notOffered.code, notOffered.reason]).toEqual([status.PERMISSION_DENIED, "CONNECT_SESSION_NOT_ALLOWED"]);

    // A session sets the tenant, end user and labels itself: what the request says is not used.
    const { account } = await d.accounts.unary(
      a.connectAccount,
      {
        integration: "keyed",
        tenantId: "someone-else",
        labels: { x: "y" },
        credential: { case: "apiKey", value: { key: "key-session-1" } },
      },
      as,
    );
    expect(account?.status).toBe(AccountStatus.CONNECTING);
    const done = await settled(env, account?.id ?? "");
    expect(done?.status).toBe(AccountStatus.ACTIVE);
    expect(done?.endUser).toMatchObject(endUser);
    expect(done?.tenantId).toBe("user-1");
    expect(done?.labels).toEqual({ source: "connect" });

    // It reads the account it connected, and no other.
    expect((await d.accounts.unary(a.getAccount, { id: account?.id ?? "" }, as)).account?.status).toBe(
      AccountStatus.ACTIVE,
    );
    keys.allow("key-other", { id: "remote-2", name: "Two" });
    const other = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: "key-other" } } },
      d.admin(env),
    );
    const foreign = await refused(d.accounts.unary(a.getAccount, { id: other.account?.id ?? "" }, as));
    expect([foreign.code, foreign.reason]).toEqual([status.PERMISSION_DENIED, "CONNECT_SESSION_NOT_ALLOWED"]);

    // Single use: spent once its account is ACTIVE.
    await eventually(
      async () =>
        (await d.accounts.unary(a.getConnectSession, { id: session?.id ?? "" }, d.admin(env))).session?.status ===
        ConnectSessionStatus.SPENT,
      5_000,
      "the session is spent",
    );
    const again = await refused(
      d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", credential: { case: "apiKey", value: { key: "key-session-1" } } },
        as,
      ),
    );
    expect([again.code, again.reason]).toEqual([status.FAILED_PRECONDITION, "CONNECT_SESSION_SPENT"]);
    const oauthAgain = await refused(d.accounts.unary(a.startOAuthConnection, { integration: "crm" }, as));
    expect(oauthAgain.reason).toBe("CONNECT_SESSION_SPENT");
  });

  it("when it has expired, then every call is UNAUTHENTICATED CONNECT_SESSION_EXPIRED", async () => {
    const { secret, session } = await createSession(env, { lifetime: durationFromMs(60_000) });
    // Its lifetime ends (made to end now: the cache has not seen it yet).
    await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${env}`)
      .collection("connect_sessions")
      .updateOne({ _id: session?.id as unknown as never }, { $set: { expireTime: new Date(Date.now() - 1000) } });
    for (const call of [
      d.accounts.unary(a.getConnectSession, {}, metadataFor(env, secret)),
      d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", credential: { case: "apiKey", value: { key: "k" } } },
        metadataFor(env, secret),
      ),
    ]) {
      const error = await refused(call);
      expect([error.code, error.reason]).toEqual([status.UNAUTHENTICATED, "CONNECT_SESSION_EXPIRED"]);
    }
    const read = await d.accounts.unary(a.getConnectSession, { id: session?.id ?? "" }, d.admin(env));
    expect(read.session?.status).toBe(ConnectSessionStatus.EXPIRED);
  });

  it("when it ended more than a day ago, then the handshake sweep removes it", async () => {
    const { session } = await createSession(env);
    const sessions = d.mongo.db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${env}`).collection("connect_sessions");
    const id = session?.id as unknown as never;
    await sessions.updateOne({ _id: id }, { $set: { expireTime: new Date(Date.now() - 2 * 86_400_000) } });
    await eventually(async () => (await sessions.findOne({ _id: id })) === null, 10_000, "the session is purged");
    const gone = await refused(d.accounts.unary(a.getConnectSession, { id: session?.id ?? "" }, d.admin(env)));
    expect([gone.code, gone.reason]).toEqual([status.NOT_FOUND, "CONNECT_SESSION_NOT_FOUND"]);
  });

  it("when it is used in another environment, then PERMISSION_DENIED names both environments", async () => {
    const { secret } = await createSession(env);
    const other = await newEnvironment();
    const error = await refused(d.accounts.unary(a.getConnectSession, {}, metadataFor(other, secret)));
    expect([error.code, error.reason]).toEqual([status.PERMISSION_DENIED, "TOKEN_WRONG_ENVIRONMENT"]);
    expect(error.message).toContain(`belongs to ${env}, not ${other}`);
  });

  it("when it makes too many attempts, then RESOURCE_EXHAUSTED CONNECT_SESSION_ATTEMPTS", async () => {
    const { secret } = await createSession(env);
    const as = metadataFor(env, secret);
    const outcomes: string[] = [];
    for (let i = 0; i < 11; i++) {
      const started = await d.accounts.unary(a.startOAuthConnection, { integration: "crm" }, as).then(
        () => "ok",
        (error: ServiceError) => reasonOf(error) ?? String(error.code),
      );
      outcomes.push(started);
    }
    expect(outcomes.slice(0, 10)).toEqual(Array(10).fill("ok"));
    expect(outcomes[10]).toBe("CONNECT_SESSION_ATTEMPTS");
  });

  it("when it is revoked on one replica, then another replica that had it cached refuses it within 1 s", async () => {
    const replica = await startTestServer(d.server.config, "api");
    const second = grpcClient(AccountService, replica.grpcAddress);
    try {
      const { secret, session } = await createSession(env);
      const as = metadataFor(env, secret);
      await eventually(
        async () => (await second.unary(a.getConnectSession, {}, as).then(() => true)) === true,
        5_000,
        "the replica knows the environment",
      );
      await second.unary(a.getConnectSession, {}, as); // cached there now
      const revoked = await d.accounts.unary(a.revokeConnectSession, { id: session?.id ?? "" }, d.admin(env));
      expect(revoked.session?.status).toBe(ConnectSessionStatus.REVOKED);
      const started = Date.now();
      let refusedAfter = -1;
      while (Date.now() - started < 5_000) {
        const outcome = await second.unary(a.getConnectSession, {}, as).then(
          () => undefined,
          (error: ServiceError) => error,
        );
        if (outcome) {
          expect([outcome.code, reasonOf(outcome)]).toEqual([status.UNAUTHENTICATED, "CONNECT_SESSION_REVOKED"]);
          refusedAfter = Date.now() - started;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      console.log(`a revoked connect session was refused by the other replica ${refusedAfter} ms after the revoke`);
      expect(refusedAfter).toBeGreaterThanOrEqual(0);
      expect(refusedAfter).toBeLessThan(1_000);
    } finally {
      second.close();
      await replica.stop();
    }
  });
});

describe("re-authorization in place", () => {
  async function activeKeyAccount(key: string) {
    keys.allow(key, { id: `remote-${key}`, name: "Remote" });
    const { account } = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", endUser, labels: { team: "a" }, credential: { case: "apiKey", value: { key } } },
      d.admin(env),
    );
    expect((await settled(env, account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
    return account?.id ?? "";
  }

  async function keyOf(id: string) {
    const response = await d.accounts.unary(a.getAccountCredentials, { id }, d.admin(env));
    return response.credential.case === "apiKey" ? response.credential.value.key : undefined;
  }

  it("when a session re-authorizes an API-key account with a key the provider refuses, then the account keeps its old key and status", async () => {
    const id = await activeKeyAccount("key-reauth-old");
    const { secret } = await createSession(env, { accountId: id, integrations: [] });
    const { account } = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", credential: { case: "apiKey", value: { key: "key-never-valid" } } },
      metadataFor(env, secret),
    );
    expect(account?.id).toBe(id);
    const after = await settled(env, id);
    expect(after?.status).toBe(AccountStatus.ACTIVE);
    expect(after?.reauthorizationFailed).toBe(true);
    expect(after?.statusReason).toMatch(/^re-authorization failed: /);
    expect(await keyOf(id)).toBe("key-reauth-old");
    // Not spent by a failure: the end user tries again, with a key that works.
    const as = metadataFor(env, secret);
    expect((await d.accounts.unary(a.getAccount, { id }, as)).account?.reauthorizationFailed).toBe(true);
    keys.allow("key-reauth-new", { id: "remote-key-reauth-old", name: "Remote" });
    await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", credential: { case: "apiKey", value: { key: "key-reauth-new" } } },
      as,
    );
    const fixed = await settled(env, id);
    expect([fixed?.status, fixed?.reauthorizationFailed, fixed?.statusReason]).toEqual([
      AccountStatus.ACTIVE,
      false,
      "",
    ]);
    expect(await keyOf(id)).toBe("key-reauth-new");
  });

  it("when a session re-authorizes an API-key account with a good key, then the id, end user, labels and creation stay and the new key replaces the old", async () => {
    const id = await activeKeyAccount("key-reauth-a");
    const before = (await d.accounts.unary(a.getAccount, { id }, d.admin(env))).account;
    keys.allow("key-reauth-b", { id: "remote-key-reauth-a", name: "Remote" });
    const { secret } = await createSession(env, { accountId: id, integrations: [] });
    const own = await d.accounts.unary(a.getConnectSession, {}, metadataFor(env, secret));
    expect(own.integrations.map((i) => i.name)).toEqual(["keyed"]);
    expect(own.session?.reauthorize).toBe(true);
    await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", credential: { case: "apiKey", value: { key: "key-reauth-b" } } },
      metadataFor(env, secret),
    );
    const after = await settled(env, id);
    expect(after?.status).toBe(AccountStatus.ACTIVE);
    expect(after?.id).toBe(id);
    expect(after?.endUser).toMatchObject(endUser);
    expect(after?.labels).toEqual(before?.labels);
    expect(after?.createTime).toEqual(before?.createTime);
    expect(await keyOf(id)).toBe("key-reauth-b");
  });

  it("when an OAuth account needing re-authorization is re-authorized through a session, then it goes CONNECTING then ACTIVE with its id, the watch sees both and a webhook says account.recovered", async () => {
    const endpoint = await d.environments.unary(
      EnvironmentService.method.createWebhookEndpoint,
      { endpoint: { url: hooks.url(`recovered-${env}`), eventTypes: ["account.recovered"] } },
      d.admin(env),
    );
    expect(endpoint.endpoint?.id).toBeTruthy();
    // An ACTIVE OAuth account whose refresh the provider then refuses.
    const start = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", endUser, redirectUri: "https://app.example/cb" },
      d.admin(env),
    );
    const first = await oauth.authorize(start.authorizationUrl);
    const { account } = await d.accounts.unary(a.completeOAuthConnection, first, d.admin(env));
    const id = account?.id ?? "";
    expect((await settled(env, id))?.status).toBe(AccountStatus.ACTIVE);
    oauth.revokeAll();
    await d.accounts.unary(a.refreshAccountCredentials, { id }, d.admin(env)).catch(() => undefined);
    await eventually(
      async () =>
        (await d.accounts.unary(a.getAccount, { id }, d.admin(env))).account?.status === AccountStatus.NEEDS_REAUTH,
      10_000,
      "the account needs re-authorization",
    );

    const watched: AccountStatus[] = [];
    const watch = d.accounts.stream(a.watchAccounts, { accountIds: [id] }, d.admin(env));
    watch.on("data", (event: { account?: { status: AccountStatus } }) => watched.push(event.account?.status ?? 0));
    watch.on("error", () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const { secret } = await createSession(env, { accountId: id, integrations: ["crm"] });
    const as = metadataFor(env, secret);
    const started = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", redirectUri: `${app}/oauth/callback` },
      as,
    );
    const url = new URL(started.authorizationUrl);
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("redirect_uri")).toBe(`${app}/oauth/callback`);
    const answer = await oauth.authorize(started.authorizationUrl);
    const completed = await d.accounts.unary(a.completeOAuthConnection, { state: answer.state, code: answer.code }, as);
    expect(completed.account?.id).toBe(id);
    const after = await settled(env, id);
    expect(after?.status).toBe(AccountStatus.ACTIVE);
    expect(after?.endUser?.id).toBe("user-1");
    await eventually(async () => watched.includes(AccountStatus.ACTIVE), 5_000, "the watch sees ACTIVE");
    watch.cancel();
    expect(watched).toEqual([AccountStatus.CONNECTING, AccountStatus.ACTIVE]);
    await eventually(
      async () => hooks.events(`recovered-${env}`).some((e) => e.type === "account.recovered"),
      10_000,
      "account.recovered is delivered",
    );
  });

  it("when an account was disconnected, then it is not re-authorized: a session made before the delete is refused too", async () => {
    const id = await activeKeyAccount("key-deleted");
    const { secret } = await createSession(env, { accountId: id, integrations: [] });
    await d.accounts.unary(a.deleteAccount, { id }, d.admin(env));
    const byToken = await refused(
      d.accounts.unary(
        a.connectAccount,
        { accountId: id, credential: { case: "apiKey", value: { key: "key-deleted" } } },
        d.admin(env),
      ),
    );
    expect([byToken.code, byToken.reason]).toEqual([status.FAILED_PRECONDITION, "ACCOUNT_NOT_ACTIVE"]);
    const bySession = await refused(
      d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", credential: { case: "apiKey", value: { key: "key-deleted" } } },
        metadataFor(env, secret),
      ),
    );
    expect([bySession.code, bySession.reason]).toEqual([status.FAILED_PRECONDITION, "ACCOUNT_NOT_ACTIVE"]);
    const again = await refused(createSession(env, { accountId: id, integrations: [] }));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect((await d.accounts.unary(a.getAccount, { id }, d.admin(env))).account?.status).toBe(
      AccountStatus.DISCONNECTED,
    );
  });

  it("when an OAuth re-authorization fails at the code exchange, then the old access token stays usable", async () => {
    const start = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t-oauth", redirectUri: "https://app.example/cb" },
      d.admin(env),
    );
    const first = await oauth.authorize(start.authorizationUrl);
    const { account } = await d.accounts.unary(a.completeOAuthConnection, first, d.admin(env));
    const id = account?.id ?? "";
    expect((await settled(env, id))?.status).toBe(AccountStatus.ACTIVE);
    const token = async () => {
      const response = await d.accounts.unary(a.getAccountCredentials, { id }, d.admin(env));
      return response.credential.case === "oauth2" ? response.credential.value.accessToken : undefined;
    };
    const old = await token();
    const again = await d.accounts.unary(
      a.startOAuthConnection,
      { accountId: id, redirectUri: "https://app.example/cb" },
      d.admin(env),
    );
    // A code the provider never issued: the exchange is refused (invalid_grant).
    await d.accounts.unary(a.completeOAuthConnection, { state: again.state, code: "never-issued" }, d.admin(env));
    const after = await settled(env, id);
    expect(after?.status).toBe(AccountStatus.ACTIVE);
    expect(after?.statusReason).toMatch(/^re-authorization failed: /);
    expect(await token()).toBe(old);
  });
});

describe("OAuth to RFC 9700", () => {
  it("when the authorization response names another issuer (RFC 9207), then the connection fails as a mix-up and its state cannot be used again", async () => {
    const environment = await newEnvironment();
    await d.environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: oauthWith("crm", { issuer: oauth.issuer }),
      },
      d.admin(environment),
    );
    const exchangesBefore = oauth.calls("authorization_code");
    const start = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t", redirectUri: "https://app.example/cb" },
      d.admin(environment),
    );
    const { code, state } = await oauth.authorize(start.authorizationUrl);
    const mixUp = await refused(
      d.accounts.unary(a.completeOAuthConnection, { state, code, iss: "https://evil.example" }, d.admin(environment)),
    );
    expect([mixUp.code, mixUp.reason]).toEqual([status.INVALID_ARGUMENT, "OAUTH_ISSUER_MISMATCH"]);
    // The same state with the right issuer: spent.
    const replay = await refused(
      d.accounts.unary(a.completeOAuthConnection, { state, code, iss: oauth.issuer }, d.admin(environment)),
    );
    expect(replay.code).toBe(status.INVALID_ARGUMENT);
    expect(oauth.calls("authorization_code")).toBe(exchangesBefore);
    expect((await d.accounts.unary(a.listAccounts, {}, d.admin(environment))).accounts).toHaveLength(0);

    // With an issuer configured, a response that names none is refused too.
    const bare = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t", redirectUri: "https://app.example/cb" },
      d.admin(environment),
    );
    const unnamed = await oauth.authorize(bare.authorizationUrl);
    const missing = await refused(
      d.accounts.unary(a.completeOAuthConnection, { state: unnamed.state, code: unnamed.code }, d.admin(environment)),
    );
    expect([missing.code, missing.reason]).toEqual([status.INVALID_ARGUMENT, "OAUTH_ISSUER_MISMATCH"]);
    expect(oauth.calls("authorization_code")).toBe(exchangesBefore);

    // The right issuer on a new state connects.
    const next = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t", redirectUri: "https://app.example/cb" },
      d.admin(environment),
    );
    const good = await oauth.authorize(next.authorizationUrl);
    const { account } = await d.accounts.unary(
      a.completeOAuthConnection,
      { ...good, iss: oauth.issuer },
      d.admin(environment),
    );
    expect((await settled(environment, account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
  });

  it("when an integration names no issuer and the response carries iss, then it is refused as a mix-up", async () => {
    const start = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "t", redirectUri: "https://app.example/cb" },
      d.admin(env),
    );
    const { code, state } = await oauth.authorize(start.authorizationUrl);
    const error = await refused(
      d.accounts.unary(a.completeOAuthConnection, { state, code, iss: oauth.issuer }, d.admin(env)),
    );
    expect(error.reason).toBe("OAUTH_ISSUER_MISMATCH");
  });

  it("when an integration does not turn PKCE off, then the authorization URL carries an S256 challenge; turned off, none", async () => {
    const environment = await newEnvironment();
    await d.environments.unary(
      EnvironmentService.method.putIntegration,
      { integration: oauthWith("crm", { pkce: false }) },
      d.admin(environment),
    );
    const start = (integration: string) =>
      d.accounts.unary(
        a.startOAuthConnection,
        { integration, tenantId: "t", redirectUri: "https://app.example/cb" },
        d.admin(environment),
      );
    const withPkce = new URL((await start("crm")).authorizationUrl);
    expect(withPkce.searchParams.get("code_challenge_method")).toBe("S256");
    expect(withPkce.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await d.environments.unary(
      EnvironmentService.method.putIntegration,
      { integration: oauthWith("nopkce", { disablePkce: true }) },
      d.admin(environment),
    );
    const without = new URL((await start("nopkce")).authorizationUrl);
    expect(without.searchParams.get("code_challenge")).toBeNull();
  });
});

describe("end users", () => {
  it("when two end users hold accounts, then ListAccounts filters keep them apart, one may hold several of one integration, and UpdateAccount changes only display fields", async () => {
    const environment = await newEnvironment();
    keys.allow("key-eu-1", { id: "r1", name: "R1" });
    const connect = (user: Record<string, unknown>) =>
      d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", endUser: user, credential: { case: "apiKey", value: { key: "key-eu-1" } } },
        d.admin(environment),
      );
    const ada = { id: "ada", displayName: "Ada", tags: ["plan:pro", "eu"] };
    const bob = { id: "bob", email: "bob@example.com", tags: ["plan:free"] };
    const ada1 = (await connect(ada)).account?.id;
    const ada2 = (await connect(ada)).account?.id;
    const bob1 = (await connect(bob)).account?.id;
    const list = async (filter: Record<string, string>) =>
      (await d.accounts.unary(a.listAccounts, filter, d.admin(environment))).accounts.map((x) => x.id).sort();
    expect(await list({ endUserId: "ada" })).toEqual([ada1, ada2].sort());
    expect(await list({ endUserId: "bob" })).toEqual([bob1]);
    expect(await list({ endUserTag: "plan:pro" })).toEqual([ada1, ada2].sort());
    expect(await list({ endUserTag: "plan:free" })).toEqual([bob1]);
    expect(await list({ endUserId: "carol" })).toEqual([]);
    // Without an end user or tenant id, a new account is refused naming tenant_id.
    const missing = await grpcFailure(
      d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", credential: { case: "apiKey", value: { key: "k" } } },
        d.admin(environment),
      ),
    );
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(missing).badRequest?.fieldViolations[0]?.field).toBe("tenant_id");

    const updated = await d.accounts.unary(
      a.updateAccount,
      { account: { id: ada1, endUser: { displayName: "Ada L." } }, updateMask: { paths: ["end_user.display_name"] } },
      d.admin(environment),
    );
    expect(updated.account?.endUser).toMatchObject({ id: "ada", displayName: "Ada L.", tags: ["plan:pro", "eu"] });
    const moved = await grpcFailure(
      d.accounts.unary(
        a.updateAccount,
        { account: { id: ada1, endUser: { id: "bob", displayName: "x" } }, updateMask: { paths: ["end_user"] } },
        d.admin(environment),
      ),
    );
    expect(moved.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(moved).badRequest?.fieldViolations[0]?.field).toBe("account.end_user.id");
  });
});

describe("the hosted OAuth callback", () => {
  const base = () => `http://127.0.0.1:${d.server.app.httpPort}`;

  it("when the session was revoked while the end user was at the provider, then the callback completes nothing", async () => {
    const { secret, session } = await createSession(env);
    const started = await d.accounts.unary(a.startOAuthConnection, { integration: "crm" }, metadataFor(env, secret));
    expect(new URL(started.authorizationUrl).searchParams.get("redirect_uri")).toBe(`${base()}/connect/oauth/callback`);
    const { code, state, redirect } = await oauth.authorize(started.authorizationUrl);
    expect(`${redirect.origin}${redirect.pathname}`).toBe(`${base()}/connect/oauth/callback`);
    const reserved = (await d.accounts.unary(a.getConnectSession, { id: session?.id ?? "" }, d.admin(env))).session
      ?.accountId;
    await d.accounts.unary(a.revokeConnectSession, { id: session?.id ?? "" }, d.admin(env));
    const exchanges = oauth.calls("authorization_code");
    const answer = await fetch(`${base()}/connect/oauth/callback?${new URLSearchParams({ state, code })}`);
    expect(answer.status).toBe(410);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(oauth.calls("authorization_code")).toBe(exchanges);
    const gone = await refused(d.accounts.unary(a.getAccount, { id: reserved ?? "" }, d.admin(env)));
    expect(gone.code).toBe(status.NOT_FOUND);
  });

  it("when a state names an environment this deployment does not know, then it is refused without a lookup", async () => {
    const answer = await fetch(
      `${base()}/connect/oauth/callback?${new URLSearchParams({ state: "nowhere-env.abcdef", code: "c" })}`,
    );
    expect(answer.status).toBe(400);
  });

  it("when one session starts OAuth twice and completes both, then only one account is made", async () => {
    const { secret } = await createSession(env);
    const as = metadataFor(env, secret);
    const first = await d.accounts.unary(a.startOAuthConnection, { integration: "crm" }, as);
    const second = await d.accounts.unary(a.startOAuthConnection, { integration: "crm" }, as);
    const one = await oauth.authorize(first.authorizationUrl);
    const two = await oauth.authorize(second.authorizationUrl);
    const done = await d.accounts.unary(a.completeOAuthConnection, { state: two.state, code: two.code }, as);
    const id = done.account?.id ?? "";
    await eventually(
      async () => (await d.accounts.unary(a.getAccount, { id }, as)).account?.status !== AccountStatus.CONNECTING,
      10_000,
      "the account is connected",
    );
    const late = await refused(d.accounts.unary(a.completeOAuthConnection, { state: one.state, code: one.code }, as));
    expect([late.code, late.reason]).toEqual([status.FAILED_PRECONDITION, "CONNECT_SESSION_SPENT"]);
  });
});

describe("CORS on the Connect endpoints", () => {
  const base = () => `http://127.0.0.1:${d.server.app.httpPort}`;
  const call = (secret: string, origin: string | undefined, environment = env) =>
    fetch(`${base()}/roomkey.v1.AccountService/GetConnectSession`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        authorization: `Bearer ${secret}`,
        "roomkey-environment": environment,
        ...(origin ? { origin } : {}),
      },
      body: "{}",
    });

  it("when a browser on an allowed origin calls with its session, then the answer carries Access-Control-Allow-Origin; from any other origin the call is refused without it", async () => {
    const { secret } = await createSession(env);
    const preflight = await fetch(`${base()}/roomkey.v1.AccountService/ConnectAccount`, {
      method: "OPTIONS",
      headers: {
        origin: app,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, roomkey-environment",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")).toContain("roomkey-environment");

    const allowed = await call(secret, app);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(app);

    const evil = await call(secret, "https://evil.example");
    expect(evil.status).toBe(403);
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    expect(((await evil.json()) as { message: string }).message).toContain(
      "does not allow calls from https://evil.example",
    );

    // The hosted page's own origin (same host) needs no CORS and is allowed.
    const same = await call(secret, base());
    expect(same.status).toBe(200);
    expect(same.headers.get("access-control-allow-origin")).toBeNull();

    // A method a session cannot call has no preflight answer.
    const tokens = await fetch(`${base()}/roomkey.v1.TokenService/ListTokens`, {
      method: "OPTIONS",
      headers: { origin: app, "access-control-request-method": "POST" },
    });
    expect(tokens.headers.get("access-control-allow-origin")).toBeNull();
  });
});
