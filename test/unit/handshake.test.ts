import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openCredential, sealCredentials } from "../../src/domain/accounts/account-common.js";
import type { Account, AccountEvent, CredentialField } from "../../src/domain/accounts/accounts.js";
import type { CheckCredential, CheckOutcome } from "../../src/domain/accounts/credential-check.js";
import {
  type ConnectingSweepDeps,
  connectingSweepParallelism,
  createConnectingSweep,
  createHandshakes,
  ProviderUnavailableError,
} from "../../src/domain/accounts/handshake.js";
import type { TokenOutcome } from "../../src/domain/accounts/oauth.js";
import { createKeyring, seal } from "../../src/domain/crypto/envelope.js";
import { EnvironmentReplacedError } from "../../src/domain/environments/environments.js";
import { clientSecretBinding } from "../../src/domain/integrations/integration-service.js";
import type { CredentialCheck, Integration, OAuth2Settings } from "../../src/domain/integrations/integrations.js";
import { handshakeWriteRetries } from "../../src/queue/retry-policy.js";
import {
  deferred,
  FakeAccountStore,
  fakeClock,
  fakeOAuthClient,
  recordingEvents,
  rejectionOf,
  settle,
} from "../helpers/fakes.js";

const env = "env-a";
const keyring = createKeyring(randomBytes(32));
const dataKey = keyring.createDataKey(env).key;
const accountId = "acc_0000000000000000000001";
const minute = 60_000;
const hour = 60 * minute;

const apiKeyCheck: CredentialCheck = {
  url: "https://api.acme.test/me",
  method: "GET",
  placement: "header",
  parameterName: "X-Api-Key",
  accountIdPath: "account.id",
  accountNamePath: "account.name",
};

const acme: Integration = {
  name: "acme",
  displayName: "Acme",
  authType: "api_key",
  credentialCheck: apiKeyCheck,
  createTime: new Date(Date.UTC(2029, 0, 1)),
  updateTime: new Date(Date.UTC(2029, 0, 1)),
  version: 1,
};

const githubSettings: OAuth2Settings = {
  authorizationUrl: "https://github.test/login/oauth/authorize",
  tokenUrl: "https://github.test/login/oauth/access_token",
  clientId: "client-id",
  scopes: ["repo", "read:user"],
  pkce: true,
  clientAuthMethod: "client_secret_basic",
  authorizationParams: {},
  scopeSeparator: " ",
};

const github: Integration = {
  name: "github",
  displayName: "GitHub",
  authType: "oauth2",
  oauth2: {
    ...githubSettings,
    sealedClientSecret: seal(dataKey, "client-secret-1", clientSecretBinding(env, "github")),
  },
  credentialCheck: { ...apiKeyCheck, url: "https://api.github.test/user", placement: "bearer", parameterName: "" },
  createTime: new Date(Date.UTC(2029, 0, 1)),
  updateTime: new Date(Date.UTC(2029, 0, 1)),
  version: 1,
};

const redirectUri = "https://app.example.test/oauth/callback";

function connecting(
  clock: { now(): Date },
  fields: Partial<Record<CredentialField, string>>,
  overrides: Partial<Account> = {},
): Account {
  const now = clock.now();
  const authType = overrides.authType ?? "api_key";
  return {
    id: accountId,
    integration: authType === "oauth2" ? "github" : "acme",
    tenantId: "tenant-1",
    labels: { team: "red" },
    status: "connecting",
    statusReason: "",
    authType,
    createTime: now,
    updateTime: now,
    credentials: sealCredentials(dataKey, env, accountId, fields),
    credentialsVersion: 1,
    handshake: { attempt: 1, startTime: now, ...(authType === "oauth2" ? { redirectUri } : {}) },
    version: 1,
    ...overrides,
  };
}

function opened(account: Account, field: CredentialField): string {
  const sealed = account.credentials[field];
  if (sealed === undefined) throw new Error(`the account has no ${field}`);
  return openCredential(dataKey, env, account.id, field, sealed);
}

const ok: CheckOutcome = { kind: "ok", remoteId: "remote-42", remoteName: "Ada Lovelace" };

const tokens: TokenOutcome = {
  kind: "ok",
  tokens: { accessToken: "access-1", tokenType: "Bearer", expiresInMs: hour, refreshToken: "refresh-1" },
};

function setup(
  options: {
    check?: (credential: CheckCredential) => Promise<CheckOutcome>;
    exchange?: () => Promise<TokenOutcome>;
    integrations?: Integration[];
  } = {},
) {
  const clock = fakeClock();
  const store = new FakeAccountStore();
  const { events, published } = recordingEvents();
  const checks: { check: CredentialCheck; credential: CheckCredential }[] = [];
  const check = options.check ?? (async () => ok);
  const oauth = fakeOAuthClient(options.exchange ? { exchangeCode: options.exchange } : {});
  const integrations = new Map((options.integrations ?? [acme, github]).map((i) => [i.name, i]));
  const keyRequests: (string | undefined)[] = [];
  const retold: AccountEvent[] = [];
  const handshakes = createHandshakes({
    retell: async (_environment, event) => void retold.push(event),
    writeRetries: handshakeWriteRetries,
    store,
    integrations: {
      async get(environment, name) {
        return environment === env ? integrations.get(name) : undefined;
      },
    },
    keys: {
      async dataKey(environment, incarnation) {
        if (environment !== env) throw new Error(`no data key for ${environment}`);
        keyRequests.push(incarnation);
        // As the directory: never the key of another incarnation than the one asked for.
        if (
          incarnation !== undefined &&
          store.currentIncarnation !== undefined &&
          incarnation !== store.currentIncarnation
        ) {
          throw new EnvironmentReplacedError(environment, incarnation);
        }
        return dataKey;
      },
    },
    checker: {
      async check(integrationCheck, credential) {
        checks.push({ check: integrationCheck, credential });
        return check(credential);
      },
    },
    oauth,
    events,
    clock,
  });
  return { handshakes, store, published, checks, oauth, clock, keyRequests, retold };
}

describe("handshake of an API key account", () => {
  it("when the provider accepts the key, then the account is ACTIVE with the remote id and name and one event is published", async () => {
    const { handshakes, store, published, checks, clock } = setup();
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));
    clock.advance(5_000);

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "active" });
    expect(checks).toEqual([{ check: apiKeyCheck, credential: { kind: "api_key", apiKey: "sk-live-123" } }]);
    const stored = store.stored(env, accountId);
    expect(stored).toMatchObject({
      status: "active",
      statusReason: "",
      remoteId: "remote-42",
      remoteName: "Ada Lovelace",
      version: 2,
      updateTime: clock.now(),
    });
    expect(opened(stored, "api_key")).toBe("sk-live-123");
    expect(published).toHaveLength(1);
    const [only] = published;
    expect(only?.environment).toBe(env);
    expect(only?.event.previousStatus).toBe("connecting");
    expect(only?.event.eventTime).toEqual(clock.now());
    expect(only?.event.account).toMatchObject({
      id: accountId,
      status: "active",
      remoteId: "remote-42",
      remoteName: "Ada Lovelace",
    });
    expect(only?.event.account).not.toHaveProperty("credentials");
  });

  it("when the account uses basic auth, then the provider is asked with its username and password", async () => {
    const basic: Integration = { ...acme, name: "basic-co", authType: "basic" };
    const { handshakes, store, checks, clock } = setup({ integrations: [basic] });
    store.put(
      env,
      connecting(clock, { username: "ada", password: "pw-secret" }, { authType: "basic", integration: "basic-co" }),
    );

    expect(await handshakes.run(env, accountId, 1, { lastTry: false })).toEqual({ outcome: "active" });

    expect(checks.map((c) => c.credential)).toEqual([{ kind: "basic", username: "ada", password: "pw-secret" }]);
  });

  it("when the provider rejects the key (401/403), then the account FAILED at once with its reason and the credential wiped", async () => {
    const reason = "the provider answered 401: invalid api key";
    const { handshakes, store, published, checks, clock } = setup({
      check: async () => ({ kind: "refused", reason }),
    });
    store.put(env, connecting(clock, { api_key: "sk-live-bad" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "failed" });
    expect(checks).toHaveLength(1);
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("failed");
    expect(stored.statusReason).toBe(reason);
    expect(stored.credentials).toEqual({});
    expect(published).toHaveLength(1);
    expect(published[0]?.event.previousStatus).toBe("connecting");
    expect(published[0]?.event.account).toMatchObject({ status: "failed", statusReason: reason });
  });

  it("when the provider is unavailable, then ProviderUnavailableError carries its Retry-After and the account stays CONNECTING", async () => {
    const { handshakes, store, published, checks, clock } = setup({
      check: async () => ({
        kind: "unavailable",
        reason: "the provider answered 429: slow down",
        retryAfterMs: 30_000,
      }),
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const error = await rejectionOf(handshakes.run(env, accountId, 1, { lastTry: false }));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as ProviderUnavailableError).retryAfterMs).toBe(30_000);
    expect((error as ProviderUnavailableError).message).toBe("the provider answered 429: slow down");
    expect((error as ProviderUnavailableError).reason).toBe("PROVIDER_UNAVAILABLE");
    expect(checks).toHaveLength(1);
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("connecting");
    expect(stored.version).toBe(1);
    expect(opened(stored, "api_key")).toBe("sk-live-123");
    expect(store.writes).toBe(0);
    expect(published).toEqual([]);
  });

  it("when the provider is unavailable on the last try, then the account FAILED saying it gave up", async () => {
    const { handshakes, store, published, clock } = setup({
      check: async () => ({ kind: "unavailable", reason: "the provider answered 503: maintenance" }),
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: true });

    expect(result).toEqual({ outcome: "failed" });
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("failed");
    expect(stored.statusReason).toBe("gave up: the provider answered 503: maintenance");
    expect(stored.credentials).toEqual({});
    expect(published).toHaveLength(1);
  });

  it("when the same handshake runs again after it ended, then it is skipped without asking the provider", async () => {
    const { handshakes, store, published, checks, clock } = setup();
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const first = await handshakes.run(env, accountId, 1, { lastTry: false });
    const second = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(first).toEqual({ outcome: "active" });
    expect(second).toEqual({ outcome: "skipped", why: "the account is active" });
    expect(checks).toHaveLength(1);
    expect(store.writes).toBe(1);
    expect(store.stored(env, accountId).version).toBe(2);
    expect(published).toHaveLength(1);
  });

  it("when a run finds its attempt already ended (the run that wrote it may have died before telling), then the outcome is retold, named by the attempt, and WatchAccounts is not told twice", async () => {
    const { handshakes, store, published, retold, clock } = setup();
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));
    await handshakes.run(env, accountId, 1, { lastTry: false });
    clock.advance(minute);
    await handshakes.run(env, accountId, 1, { lastTry: false });
    expect(published).toHaveLength(1);
    expect(retold).toHaveLength(1);
    expect(retold[0]).toMatchObject({
      previousStatus: "connecting",
      account: { status: "active" },
      handshake: { attempt: 1, startTime: store.stored(env, accountId).handshake.startTime },
    });
    // An older attempt's job retells nothing: its outcome is not the account's.
    await handshakes.run(env, accountId, 0, { lastTry: false });
    expect(retold).toHaveLength(1);
  });

  it("when a re-authorization failed and a later run finds it ended, then that outcome is retold too, still marked failed", async () => {
    const { handshakes, store, retold, clock } = setup({
      check: async () => ({ kind: "refused", reason: "the provider answered 401" }),
    });
    store.put(
      env,
      connecting(
        clock,
        { api_key: "sk-new" },
        {
          held: { credentials: {} },
          handshake: { attempt: 2, startTime: clock.now(), reauthorizedFrom: "needs_reauth" },
        },
      ),
    );
    expect(await handshakes.run(env, accountId, 2, { lastTry: false })).toEqual({ outcome: "failed" });
    expect(store.stored(env, accountId)).toMatchObject({
      status: "needs_reauth",
      handshake: { reauthorizationFailed: true },
    });
    await handshakes.run(env, accountId, 2, { lastTry: false });
    expect(retold).toHaveLength(1);
    expect(retold[0]).toMatchObject({
      previousStatus: "connecting",
      account: { status: "needs_reauth", reauthorizationFailed: true },
      handshake: { attempt: 2 },
    });
  });

  it("when two runs of one handshake overlap, then exactly one moves the account and one event is published", async () => {
    const answer = deferred<CheckOutcome>();
    const { handshakes, store, published, checks, clock } = setup({ check: () => answer.promise });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const first = handshakes.run(env, accountId, 1, { lastTry: false });
    const second = handshakes.run(env, accountId, 1, { lastTry: false });
    await settle();
    expect(checks).toHaveLength(2);
    answer.resolve(ok);
    const results = await Promise.all([first, second]);

    expect(results.filter((r) => r.outcome === "active")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "skipped")).toEqual([
      { outcome: "skipped", why: "another writer ended this handshake first" },
    ]);
    expect(store.writes).toBe(1);
    expect(store.stored(env, accountId)).toMatchObject({ status: "active", version: 2 });
    expect(published).toHaveLength(1);
  });

  it("when one overlapping run is refused after the other activated the account, then the account stays ACTIVE", async () => {
    const answers = [deferred<CheckOutcome>(), deferred<CheckOutcome>()];
    let call = 0;
    const { handshakes, store, published, clock } = setup({
      check: () => (answers[call++] ?? deferred<CheckOutcome>()).promise,
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const first = handshakes.run(env, accountId, 1, { lastTry: false });
    const second = handshakes.run(env, accountId, 1, { lastTry: false });
    await settle();
    answers[0]?.resolve(ok);
    expect(await first).toEqual({ outcome: "active" });
    answers[1]?.resolve({ kind: "refused", reason: "the provider answered 401" });

    expect(await second).toEqual({ outcome: "skipped", why: "another writer ended this handshake first" });
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("active");
    expect(opened(stored, "api_key")).toBe("sk-live-123");
    expect(published).toHaveLength(1);
  });

  it("when the labels change during the check, then the handshake still finishes and the new labels are kept", async () => {
    const { handshakes, store, published, clock } = setup({
      check: async () => {
        store.change(env, accountId, { labels: { team: "blue" } });
        return ok;
      },
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "active" });
    expect(store.conflicts).toBe(1);
    expect(store.stored(env, accountId)).toMatchObject({
      status: "active",
      labels: { team: "blue" },
      remoteId: "remote-42",
      version: 3,
    });
    expect(published).toHaveLength(1);
    expect(published[0]?.event.account.labels).toEqual({ team: "blue" });
  });

  it("when the account is deleted during the check, then the handshake does not bring it back", async () => {
    const { handshakes, store, published, clock } = setup({
      check: async () => {
        store.change(env, accountId, { status: "disconnected", credentials: {}, credentialsVersion: 2 });
        return ok;
      },
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "skipped", why: "another writer ended this handshake first" });
    expect(store.stored(env, accountId)).toMatchObject({ status: "disconnected", credentials: {}, version: 2 });
    expect(published).toEqual([]);
  });

  it("when the account is re-connected (a newer attempt) during the check, then the older handshake writes nothing", async () => {
    const { handshakes, store, published, clock } = setup({
      check: async () => {
        store.change(env, accountId, { handshake: { attempt: 2, startTime: clock.now() } });
        return { kind: "refused", reason: "the provider answered 401" };
      },
    });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "skipped", why: "another writer ended this handshake first" });
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("connecting");
    expect(stored.handshake.attempt).toBe(2);
    expect(opened(stored, "api_key")).toBe("sk-live-123");
    expect(published).toEqual([]);
  });

  it("when the account keeps changing under every write, then ProviderUnavailableError asks for a retry and nothing is published", async () => {
    const { handshakes, store, published, clock } = setup();
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));
    store.beforeUpdate = (environment, account) => {
      store.change(environment, account.id, { labels: { touched: String(store.conflicts) } });
    };

    const error = await rejectionOf(handshakes.run(env, accountId, 1, { lastTry: false }));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect(store.conflicts).toBe(5);
    expect(store.stored(env, accountId).status).toBe("connecting");
    expect(published).toEqual([]);
  });

  it.each([
    ["active", { status: "active" }, "the account is active"],
    ["failed", { status: "failed", statusReason: "earlier" }, "the account is failed"],
    ["disconnected", { status: "disconnected", credentials: {} }, "the account is disconnected"],
  ] as const)(
    "when the account is %s, then the handshake is skipped without asking the provider",
    async (_name, overrides, why) => {
      const { handshakes, store, published, checks, clock } = setup();
      store.put(env, { ...connecting(clock, { api_key: "sk-live-123" }), ...overrides });

      const result = await handshakes.run(env, accountId, 1, { lastTry: false });

      expect(result).toEqual({ outcome: "skipped", why });
      expect(checks).toEqual([]);
      expect(store.writes).toBe(0);
      expect(published).toEqual([]);
    },
  );

  it("when the job is for an older attempt, then it is skipped without asking the provider", async () => {
    const { handshakes, store, published, checks, clock } = setup();
    store.put(
      env,
      connecting(clock, { api_key: "sk-live-123" }, { handshake: { attempt: 2, startTime: clock.now() } }),
    );

    const result = await handshakes.run(env, accountId, 1, { lastTry: true });

    expect(result).toEqual({ outcome: "skipped", why: "a newer handshake replaced this one" });
    expect(checks).toEqual([]);
    expect(store.writes).toBe(0);
    expect(store.stored(env, accountId).status).toBe("connecting");
    expect(published).toEqual([]);
  });

  it("when the account does not exist, then the handshake is skipped without asking the provider", async () => {
    const { handshakes, store, published, checks, clock } = setup();
    store.put("env-b", connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "skipped", why: "no such account in this environment" });
    expect(checks).toEqual([]);
    expect(store.writes).toBe(0);
    expect(published).toEqual([]);
  });

  it("when the integration is gone, then the account FAILED naming it, without asking the provider", async () => {
    const { handshakes, store, published, checks, clock } = setup({ integrations: [github] });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "failed" });
    expect(checks).toEqual([]);
    expect(store.stored(env, accountId)).toMatchObject({
      status: "failed",
      statusReason: 'integration "acme" no longer exists',
      credentials: {},
    });
    expect(published).toHaveLength(1);
  });

  it("when the integration now uses another auth type, then the account FAILED, without asking the provider", async () => {
    const { handshakes, store, checks, clock } = setup({ integrations: [{ ...acme, authType: "basic" }] });
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    expect(await handshakes.run(env, accountId, 1, { lastTry: false })).toEqual({ outcome: "failed" });

    expect(checks).toEqual([]);
    expect(store.stored(env, accountId).statusReason).toBe('integration "acme" now uses another auth type');
  });

  it("when the stored credential does not open, then the account FAILED, without asking the provider", async () => {
    const { handshakes, store, checks, clock } = setup();
    const account = connecting(clock, {});
    // Sealed for another account: its binding does not match.
    account.credentials = sealCredentials(dataKey, env, "acc_0000000000000000000002", { api_key: "sk-live-123" });
    store.put(env, account);

    expect(await handshakes.run(env, accountId, 1, { lastTry: false })).toEqual({ outcome: "failed" });

    expect(checks).toEqual([]);
    expect(store.stored(env, accountId)).toMatchObject({
      status: "failed",
      statusReason: "the stored credential does not open",
    });
  });
});

describe("handshake of an OAuth account", () => {
  const pending = { authorization_code: "code-abc", code_verifier: "verifier-xyz" };

  it("when a code is pending, then it is exchanged once and the tokens are saved before the check, which uses the new access token", async () => {
    let atCheck: Account | undefined;
    const { handshakes, store, published, checks, oauth, clock } = setup({
      exchange: async () => tokens,
      check: async () => {
        atCheck = store.stored(env, accountId);
        return ok;
      },
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "active" });
    expect(oauth.exchanges).toHaveLength(1);
    expect(oauth.exchanges[0]?.clientSecret).toBe("client-secret-1");
    expect(oauth.exchanges[0]?.settings.tokenUrl).toBe("https://github.test/login/oauth/access_token");
    expect(oauth.exchanges[0]?.grant).toEqual({ code: "code-abc", redirectUri, codeVerifier: "verifier-xyz" });
    expect(checks).toEqual([
      { check: github.credentialCheck, credential: { kind: "access_token", accessToken: "access-1" } },
    ]);
    if (!atCheck) throw new Error("the checker was not called");
    expect(atCheck.status).toBe("connecting");
    expect(Object.keys(atCheck.credentials).sort()).toEqual(["access_token", "refresh_token"]);
    expect(opened(atCheck, "access_token")).toBe("access-1");
    expect(opened(atCheck, "refresh_token")).toBe("refresh-1");
    expect(atCheck.credentialsVersion).toBe(2);
    expect(atCheck.credentialsExpireTime).toEqual(new Date(clock.now().getTime() + hour));
    expect(atCheck.tokenType).toBe("Bearer");
    expect(atCheck.scopes).toEqual(["repo", "read:user"]);
    expect(store.stored(env, accountId)).toMatchObject({ status: "active", remoteId: "remote-42", version: 3 });
    expect(published).toHaveLength(1);
    expect(published[0]?.event.account.status).toBe("active");
  });

  it("when the provider grants other scopes and no expiry, then those scopes are stored and no expiry is set", async () => {
    const { handshakes, store, clock } = setup({
      exchange: async () => ({
        kind: "ok",
        tokens: { accessToken: "access-1", tokenType: "bearer", scopes: ["repo"] },
      }),
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    expect(await handshakes.run(env, accountId, 1, { lastTry: false })).toEqual({ outcome: "active" });

    const stored = store.stored(env, accountId);
    expect(stored.scopes).toEqual(["repo"]);
    expect(stored.tokenType).toBe("bearer");
    expect(stored).not.toHaveProperty("credentialsExpireTime");
    expect(Object.keys(stored.credentials)).toEqual(["access_token"]);
  });

  it("when the worker dies after the exchange and the job runs again, then the code is not exchanged again", async () => {
    let checkCalls = 0;
    const { handshakes, store, published, checks, oauth, clock } = setup({
      exchange: async () => tokens,
      check: async () => {
        checkCalls++;
        if (checkCalls === 1) throw new Error("worker killed");
        return ok;
      },
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const crash = await rejectionOf(handshakes.run(env, accountId, 1, { lastTry: false }));
    expect((crash as Error).message).toBe("worker killed");
    expect(store.stored(env, accountId).status).toBe("connecting");
    expect(published).toEqual([]);

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "active" });
    expect(oauth.exchanges).toHaveLength(1);
    expect(checks.map((c) => c.credential)).toEqual([
      { kind: "access_token", accessToken: "access-1" },
      { kind: "access_token", accessToken: "access-1" },
    ]);
    expect(opened(store.stored(env, accountId), "refresh_token")).toBe("refresh-1");
    expect(published).toHaveLength(1);
  });

  it("when the provider refuses the code (invalid_grant), then the account FAILED with its reason and nothing is checked", async () => {
    const reason = "invalid_grant: the authorization code has expired";
    const { handshakes, store, published, checks, oauth, clock } = setup({
      exchange: async () => ({ kind: "refused", error: "invalid_grant", reason }),
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const result = await handshakes.run(env, accountId, 1, { lastTry: false });

    expect(result).toEqual({ outcome: "failed" });
    expect(oauth.exchanges).toHaveLength(1);
    expect(checks).toEqual([]);
    expect(store.stored(env, accountId)).toMatchObject({ status: "failed", statusReason: reason, credentials: {} });
    expect(published).toHaveLength(1);
    expect(published[0]?.event.account).toMatchObject({ status: "failed", statusReason: reason });
  });

  it("when the token endpoint is unavailable, then the job retries later with the code still pending", async () => {
    const { handshakes, store, published, checks, clock } = setup({
      exchange: async () => ({ kind: "unavailable", reason: "the provider answered 502", retryAfterMs: 2_000 }),
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const error = await rejectionOf(handshakes.run(env, accountId, 1, { lastTry: false }));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as ProviderUnavailableError).retryAfterMs).toBe(2_000);
    expect(checks).toEqual([]);
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("connecting");
    expect(opened(stored, "authorization_code")).toBe("code-abc");
    expect(published).toEqual([]);
  });

  it("when the token endpoint is unavailable on the last try, then the account FAILED saying it gave up", async () => {
    const { handshakes, store, clock } = setup({
      exchange: async () => ({ kind: "unavailable", reason: "the provider answered 502" }),
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    expect(await handshakes.run(env, accountId, 1, { lastTry: true })).toEqual({ outcome: "failed" });

    expect(store.stored(env, accountId)).toMatchObject({
      status: "failed",
      statusReason: "gave up: the provider answered 502",
      credentials: {},
    });
  });

  it("when the integration has no client secret, then the account FAILED without an exchange", async () => {
    const { handshakes, store, oauth, clock } = setup({
      integrations: [{ ...github, oauth2: githubSettings }],
      exchange: async () => tokens,
    });
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    expect(await handshakes.run(env, accountId, 1, { lastTry: false })).toEqual({ outcome: "failed" });

    expect(oauth.exchanges).toEqual([]);
    expect(store.stored(env, accountId).statusReason).toBe('integration "github" has no client secret');
  });
});

describe("a handshake bound to an incarnation of its environment", () => {
  const pending = { authorization_code: "code-abc", code_verifier: "verifier-xyz" };

  it("when the job carries its incarnation, then every key it asks for and every write it makes is bound to it", async () => {
    const { handshakes, store, clock, keyRequests } = setup({ exchange: async () => tokens });
    store.currentIncarnation = "1000";
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    expect(await handshakes.run(env, accountId, 1, { lastTry: false, incarnation: "1000" })).toEqual({
      outcome: "active",
    });

    expect(keyRequests).toEqual(["1000", "1000"]);
    expect(store.boundTo).toEqual(["1000", "1000"]);
  });

  it("when the environment is replaced while the provider checks the key, then nothing is written or published and the job hears why", async () => {
    const held = deferred<CheckOutcome>();
    const { handshakes, store, published, clock } = setup({ check: () => held.promise });
    store.currentIncarnation = "1000";
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const running = handshakes.run(env, accountId, 1, { lastTry: false, incarnation: "1000" });
    await settle();
    // Force-deleted and created again under the same name.
    store.currentIncarnation = "2000";
    held.resolve(ok);

    const error = await rejectionOf(running);
    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(store.writes).toBe(0);
    expect(store.stored(env, accountId).status).toBe("connecting");
    expect(published).toEqual([]);
  });

  it("when the environment was replaced before an OAuth code is exchanged, then the code is not exchanged and nothing is sealed", async () => {
    const { handshakes, store, oauth, clock } = setup({ exchange: async () => tokens });
    store.currentIncarnation = "2000";
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const error = await rejectionOf(handshakes.run(env, accountId, 1, { lastTry: false, incarnation: "1000" }));

    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(oauth.exchanges).toEqual([]);
    expect(store.writes).toBe(0);
  });

  it("when the environment is replaced while the code is exchanged, then the tokens are not saved", async () => {
    const held = deferred<TokenOutcome>();
    const { handshakes, store, checks, clock } = setup({ exchange: () => held.promise });
    store.currentIncarnation = "1000";
    store.put(env, connecting(clock, pending, { authType: "oauth2" }));

    const running = handshakes.run(env, accountId, 1, { lastTry: false, incarnation: "1000" });
    await settle();
    store.currentIncarnation = "2000";
    held.resolve(tokens);

    expect(await rejectionOf(running)).toBeInstanceOf(EnvironmentReplacedError);
    expect(store.writes).toBe(0);
    expect(checks).toEqual([]);
  });

  it("when the sweep abandons a stuck handshake for an incarnation, then its write is bound to it", async () => {
    const { handshakes, store, clock } = setup();
    store.currentIncarnation = "2000";
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    const error = await rejectionOf(handshakes.abandon(env, accountId, 1, "stuck", "1000"));

    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(store.stored(env, accountId).status).toBe("connecting");
  });
});

describe("abandon", () => {
  it("when the account is still connecting in that attempt, then it FAILED with the reason and an event", async () => {
    const { handshakes, store, published, clock } = setup();
    store.put(env, connecting(clock, { api_key: "sk-live-123" }));

    await handshakes.abandon(env, accountId, 1, "the handshake failed unexpectedly; connect again");

    expect(store.stored(env, accountId)).toMatchObject({
      status: "failed",
      statusReason: "the handshake failed unexpectedly; connect again",
      credentials: {},
    });
    expect(published).toHaveLength(1);
  });

  it("when the account moved to a newer attempt or left CONNECTING, then nothing changes", async () => {
    const { handshakes, store, published, clock } = setup();
    store.put(
      env,
      connecting(clock, { api_key: "sk-live-123" }, { handshake: { attempt: 2, startTime: clock.now() } }),
    );
    store.put("env-b", connecting(clock, { api_key: "sk-live-123" }, { status: "active" }));

    await handshakes.abandon(env, accountId, 1, "gone");
    await handshakes.abandon("env-b", accountId, 1, "gone");

    expect(store.writes).toBe(0);
    expect(published).toEqual([]);
  });
});

describe("connecting sweep", () => {
  function sweepSetup(states: Record<string, "live" | "completed" | "failed" | "missing">) {
    const clock = fakeClock();
    const calls = {
      listed: [] as { environment: string; updatedBefore: Date }[],
      requeued: [] as [string, string, number, string?][],
      failed: [] as [string, string, number, string, string?][],
    };
    const deps: ConnectingSweepDeps = {
      async listConnecting(environment, updatedBefore) {
        calls.listed.push({ environment, updatedBefore });
        return Object.keys(states).map((id, i) =>
          connecting(clock, {}, { id, handshake: { attempt: i + 1, startTime: clock.now() } }),
        );
      },
      async jobState(_environment, id) {
        return states[id] ?? "missing";
      },
      async requeue(environment, id, attempt, incarnation) {
        calls.requeued.push(
          incarnation === undefined ? [environment, id, attempt] : [environment, id, attempt, incarnation],
        );
      },
      async failStuck(environment, id, attempt, reason, incarnation) {
        calls.failed.push(
          incarnation === undefined
            ? [environment, id, attempt, reason]
            : [environment, id, attempt, reason, incarnation],
        );
      },
      clock,
      graceMs: 2 * minute,
    };
    return { sweep: createConnectingSweep(deps), calls, clock };
  }

  it("when handshake jobs are missing, completed, failed or live, then only the missing and completed are queued again and the failed are ended", async () => {
    const { sweep, calls, clock } = sweepSetup({ a: "missing", b: "completed", c: "failed", d: "live" });

    const result = await sweep(env);

    expect(result).toEqual({ requeued: 2, failed: 1 });
    expect(calls.listed).toEqual([{ environment: env, updatedBefore: new Date(clock.now().getTime() - 2 * minute) }]);
    expect(calls.requeued).toEqual([
      [env, "a", 1],
      [env, "b", 2],
    ]);
    expect(calls.failed).toEqual([[env, "c", 3, "the handshake failed unexpectedly; connect again"]]);
  });

  it("when the sweep runs for an incarnation, then what it queues and what it ends is bound to that incarnation", async () => {
    const { sweep, calls } = sweepSetup({ a: "missing", c: "failed" });

    await sweep(env, { incarnation: "1000" });

    expect(calls.requeued).toEqual([[env, "a", 1, "1000"]]);
    expect(calls.failed).toEqual([[env, "c", 2, "the handshake failed unexpectedly; connect again", "1000"]]);
  });

  it("when asked for a sweep without grace (Redis is back), then accounts changed up to now are swept too", async () => {
    const { sweep, calls, clock } = sweepSetup({ a: "missing" });

    const result = await sweep(env, { noGrace: true });

    expect(result).toEqual({ requeued: 1, failed: 0 });
    expect(calls.listed).toEqual([{ environment: env, updatedBefore: clock.now() }]);
  });

  it("when many accounts lost their jobs, then they are swept several at a time, never more than the limit", async () => {
    const states = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`acc-${i}`, "missing" as const]));
    const { calls } = sweepSetup(states);
    let inFlight = 0;
    let most = 0;
    const clock = fakeClock();
    const sweep = createConnectingSweep({
      listConnecting: async () =>
        Object.keys(states).map((id) =>
          connecting(clock, {}, { id, handshake: { attempt: 1, startTime: clock.now() } }),
        ),
      async jobState() {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 1));
        inFlight--;
        return "missing";
      },
      async requeue(environment, id, attempt) {
        calls.requeued.push([environment, id, attempt]);
      },
      async failStuck() {},
      clock,
      graceMs: minute,
    });

    const result = await sweep(env);

    expect(result).toEqual({ requeued: 40, failed: 0 });
    expect(new Set(calls.requeued.map(([, id]) => id)).size).toBe(40);
    expect(most).toBe(connectingSweepParallelism);
  });
});
