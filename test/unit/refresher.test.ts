import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openCredential, sealCredentials } from "../../src/domain/accounts/account-common.js";
import type { Account, CredentialField } from "../../src/domain/accounts/accounts.js";
import { ProviderUnavailableError } from "../../src/domain/accounts/handshake.js";
import type { TokenOutcome } from "../../src/domain/accounts/oauth.js";
import { createRefresher, createRefreshSweep } from "../../src/domain/accounts/refresher.js";
import { createKeyring, seal } from "../../src/domain/crypto/envelope.js";
import { EnvironmentReplacedError } from "../../src/domain/environments/environments.js";
import { clientSecretBinding } from "../../src/domain/integrations/integration-service.js";
import type { Integration, OAuth2Settings } from "../../src/domain/integrations/integrations.js";
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
const dataKey = createKeyring(randomBytes(32)).createDataKey(env).key;
const accountId = "acc_0000000000000000000001";
const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;

const settings: OAuth2Settings = {
  authorizationUrl: "https://github.test/login/oauth/authorize",
  tokenUrl: "https://github.test/login/oauth/access_token",
  clientId: "client-id",
  scopes: ["repo", "read:user"],
  pkce: false,
  clientAuthMethod: "client_secret_post",
  authorizationParams: {},
  scopeSeparator: " ",
};

const github: Integration = {
  name: "github",
  displayName: "GitHub",
  authType: "oauth2",
  oauth2: { ...settings, sealedClientSecret: seal(dataKey, "client-secret-1", clientSecretBinding(env, "github")) },
  credentialCheck: {
    url: "https://api.github.test/user",
    method: "GET",
    placement: "bearer",
    parameterName: "",
    accountIdPath: "id",
    accountNamePath: "login",
  },
  createTime: new Date(Date.UTC(2029, 0, 1)),
  updateTime: new Date(Date.UTC(2029, 0, 1)),
  version: 1,
};

function activeAccount(clock: { now(): Date }, overrides: Partial<Account> = {}): Account {
  const created = new Date(clock.now().getTime() - day);
  return {
    id: accountId,
    integration: "github",
    tenantId: "tenant-1",
    labels: { team: "red" },
    status: "active",
    statusReason: "",
    authType: "oauth2",
    remoteId: "remote-42",
    remoteName: "Ada",
    createTime: created,
    updateTime: created,
    credentialsExpireTime: new Date(clock.now().getTime() + 30_000),
    lastRefreshTime: created,
    tokenType: "Bearer",
    scopes: ["repo"],
    credentials: sealCredentials(dataKey, env, accountId, { access_token: "access-old", refresh_token: "refresh-old" }),
    credentialsVersion: 3,
    handshake: { attempt: 1, startTime: created },
    version: 5,
    ...overrides,
  };
}

function opened(account: Account, field: CredentialField): string {
  const sealed = account.credentials[field];
  if (sealed === undefined) throw new Error(`the account has no ${field}`);
  return openCredential(dataKey, env, account.id, field, sealed);
}

/** What another refresh (or a re-authorization) writes while this one runs. */
function othersCredentials(credentialsVersion: number): Partial<Account> {
  return {
    credentials: sealCredentials(dataKey, env, accountId, {
      access_token: "access-other",
      refresh_token: "refresh-other",
    }),
    credentialsVersion,
  };
}

function setup(refresh: (refreshToken: string) => Promise<TokenOutcome>, integrations: Integration[] = [github]) {
  const clock = fakeClock();
  const store = new FakeAccountStore();
  const { events, published } = recordingEvents();
  const oauth = fakeOAuthClient({ refresh });
  const byName = new Map(integrations.map((i) => [i.name, i]));
  const keyRequests: (string | undefined)[] = [];
  const refresher = createRefresher({
    store,
    integrations: { get: async (_environment, name) => byName.get(name) },
    keys: {
      async dataKey(environment, incarnation) {
        keyRequests.push(incarnation);
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
    oauth,
    events,
    clock,
  });
  return { refresher, store, published, oauth, clock, keyRequests };
}

const rotated: TokenOutcome = {
  kind: "ok",
  tokens: { accessToken: "access-new", tokenType: "Bearer", expiresInMs: hour, refreshToken: "refresh-new" },
};

describe("refresh", () => {
  it("when the provider answers, then the new access token and rotated refresh token are stored under the next credentials version", async () => {
    const { refresher, store, published, oauth, clock } = setup(async () => rotated);
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result).toEqual({ outcome: "refreshed", credentialsVersion: 4 });
    expect(oauth.refreshes).toEqual([
      { settings: github.oauth2, clientSecret: "client-secret-1", refreshToken: "refresh-old" },
    ]);
    const stored = store.stored(env, accountId);
    expect(opened(stored, "access_token")).toBe("access-new");
    expect(opened(stored, "refresh_token")).toBe("refresh-new");
    expect(stored).toMatchObject({
      status: "active",
      credentialsVersion: 4,
      credentialsExpireTime: new Date(clock.now().getTime() + hour),
      lastRefreshTime: clock.now(),
      updateTime: clock.now(),
      tokenType: "Bearer",
      scopes: ["repo"],
      version: 6,
    });
    expect(store.writes).toBe(1);
    expect(published).toEqual([]);
  });

  it("when the credentials moved past the version the requester saw, then the job skips without asking the provider; at that version it refreshes", async () => {
    const { refresher, store, oauth, clock } = setup(async () => rotated);
    store.put(env, activeAccount(clock));

    expect(await refresher.refresh(env, accountId, { lastTry: false, seenVersion: 2 })).toMatchObject({
      outcome: "skipped",
    });
    expect(oauth.refreshes).toEqual([]);
    expect(store.writes).toBe(0);

    expect(await refresher.refresh(env, accountId, { lastTry: false, seenVersion: 3 })).toEqual({
      outcome: "refreshed",
      credentialsVersion: 4,
    });
    expect(oauth.refreshes).toHaveLength(1);
  });

  it("when a sweep finds 1,200 accounts due, then it queues them in three round trips", async () => {
    const clock = fakeClock();
    const batches: number[] = [];
    const due = Array.from({ length: 1_200 }, (_, i) => activeAccount(clock, { id: `acc_${i}` }));
    const sweep = createRefreshSweep({
      listDueForRefresh: async () => due,
      refreshes: {
        async request(_environment, requests) {
          batches.push(requests.length);
        },
      },
      settings: async () => ({ refreshMarginMs: minute, refreshTokenKeepaliveMs: day }),
      clock,
    });
    expect(await sweep(env)).toEqual({ queued: 1_200 });
    expect(batches).toEqual([500, 500, 200]);
  });

  it("when the provider returns no refresh token, then the old one is kept", async () => {
    const { refresher, store, oauth, clock } = setup(async () => ({
      kind: "ok",
      tokens: { accessToken: "access-new", tokenType: "Bearer", expiresInMs: 2 * hour },
    }));
    store.put(env, activeAccount(clock));

    expect(await refresher.refresh(env, accountId, { lastTry: false })).toEqual({
      outcome: "refreshed",
      credentialsVersion: 4,
    });

    expect(oauth.refreshes).toHaveLength(1);
    const stored = store.stored(env, accountId);
    expect(opened(stored, "access_token")).toBe("access-new");
    expect(opened(stored, "refresh_token")).toBe("refresh-old");
    expect(stored.credentialsExpireTime).toEqual(new Date(clock.now().getTime() + 2 * hour));
  });

  it("when the provider gives no expiry, then the stored expiry is removed", async () => {
    const { refresher, store, clock } = setup(async () => ({
      kind: "ok",
      tokens: { accessToken: "access-new", tokenType: "Bearer", refreshToken: "refresh-new" },
    }));
    store.put(env, activeAccount(clock));

    await refresher.refresh(env, accountId, { lastTry: false });

    expect(store.stored(env, accountId)).not.toHaveProperty("credentialsExpireTime");
  });

  it("when the provider refuses the refresh token and nobody else refreshed, then NEEDS_REAUTH with its reason and one event", async () => {
    const reason = "invalid_grant: the refresh token was revoked";
    const { refresher, store, published, oauth, clock } = setup(async () => ({
      kind: "refused",
      error: "invalid_grant",
      reason,
    }));
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result).toEqual({ outcome: "needs_reauth", reason });
    expect(oauth.refreshes).toHaveLength(1);
    const stored = store.stored(env, accountId);
    expect(stored).toMatchObject({ status: "needs_reauth", statusReason: reason, credentialsVersion: 3, version: 6 });
    expect(published).toHaveLength(1);
    expect(published[0]?.environment).toBe(env);
    expect(published[0]?.event.previousStatus).toBe("active");
    expect(published[0]?.event.account).toMatchObject({ id: accountId, status: "needs_reauth", statusReason: reason });
  });

  it("when the provider refuses after another refresh moved the credentials version, then the other refresh stands and no NEEDS_REAUTH", async () => {
    const { refresher, store, published, clock } = setup(async () => {
      store.change(env, accountId, othersCredentials(4));
      return { kind: "refused", error: "invalid_grant", reason: "invalid_grant: refresh token already used" };
    });
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result).toEqual({ outcome: "skipped", why: "the credentials changed while the refresh ran" });
    const stored = store.stored(env, accountId);
    expect(stored.status).toBe("active");
    expect(stored.statusReason).toBe("");
    expect(stored.credentialsVersion).toBe(4);
    expect(opened(stored, "access_token")).toBe("access-other");
    // Re-read first: no NEEDS_REAUTH write is even tried over the stale account.
    expect(store.conflicts).toBe(0);
    expect(store.writes).toBe(0);
    expect(published).toEqual([]);
  });

  it("when the provider refuses and only the labels changed meanwhile, then NEEDS_REAUTH is still declared and the labels kept", async () => {
    const { refresher, store, published, clock } = setup(async () => {
      store.change(env, accountId, { labels: { team: "blue" } });
      return { kind: "refused", error: "invalid_grant", reason: "invalid_grant" };
    });
    store.put(env, activeAccount(clock));

    expect(await refresher.refresh(env, accountId, { lastTry: false })).toEqual({
      outcome: "needs_reauth",
      reason: "invalid_grant",
    });

    expect(store.stored(env, accountId)).toMatchObject({ status: "needs_reauth", labels: { team: "blue" } });
    expect(published).toHaveLength(1);
  });

  it("when the credentials version moved before the new tokens are written, then nothing is overwritten", async () => {
    const { refresher, store, published, clock } = setup(async () => {
      store.change(env, accountId, othersCredentials(4));
      return rotated;
    });
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result).toEqual({ outcome: "skipped", why: "the credentials changed while the refresh ran" });
    const stored = store.stored(env, accountId);
    expect(stored.credentialsVersion).toBe(4);
    expect(opened(stored, "access_token")).toBe("access-other");
    expect(opened(stored, "refresh_token")).toBe("refresh-other");
    expect(store.writes).toBe(0);
    expect(published).toEqual([]);
  });

  it("when the account is disconnected while the refresh runs, then the new tokens are not written", async () => {
    const { refresher, store, clock } = setup(async () => {
      store.change(env, accountId, { status: "disconnected", credentials: {} });
      return rotated;
    });
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result.outcome).toBe("skipped");
    expect(store.stored(env, accountId)).toMatchObject({ status: "disconnected", credentials: {} });
    expect(store.writes).toBe(0);
  });

  it("when only the labels changed before the write, then the tokens are written over the new version and the labels kept", async () => {
    const { refresher, store, clock } = setup(async () => {
      store.change(env, accountId, { labels: { team: "blue" } });
      return rotated;
    });
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    expect(result).toEqual({ outcome: "refreshed", credentialsVersion: 4 });
    expect(store.conflicts).toBe(1);
    const stored = store.stored(env, accountId);
    expect(stored.labels).toEqual({ team: "blue" });
    expect(opened(stored, "refresh_token")).toBe("refresh-new");
    expect(stored.version).toBe(7);
  });

  it("when the provider is unavailable, then ProviderUnavailableError with its Retry-After makes the job retry and nothing changes", async () => {
    const { refresher, store, published, clock } = setup(async () => ({
      kind: "unavailable",
      reason: "the provider answered 429",
      retryAfterMs: 12_000,
    }));
    const before = activeAccount(clock);
    store.put(env, before);

    const error = await rejectionOf(refresher.refresh(env, accountId, { lastTry: false }));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as ProviderUnavailableError).retryAfterMs).toBe(12_000);
    expect(store.stored(env, accountId)).toEqual(before);
    expect(published).toEqual([]);
  });

  it("when the provider is unavailable on the last try, then it gives up and the account keeps its token", async () => {
    const { refresher, store, published, clock } = setup(async () => ({
      kind: "unavailable",
      reason: "the provider answered 503",
    }));
    const before = activeAccount(clock);
    store.put(env, before);

    const result = await refresher.refresh(env, accountId, { lastTry: true });

    expect(result).toEqual({ outcome: "gave_up", reason: "the provider answered 503" });
    expect(store.stored(env, accountId)).toEqual(before);
    expect(published).toEqual([]);
  });

  it.each([
    ["missing", undefined, "no such account in this environment"],
    ["not active", { status: "needs_reauth" }, "the account is needs_reauth (oauth2)"],
    ["not OAuth", { authType: "api_key" }, "the account is active (api_key)"],
    [
      "without a refresh token",
      { credentials: sealCredentials(dataKey, env, accountId, { access_token: "access-old" }) },
      "the provider gave no refresh token",
    ],
  ] as const)(
    "when the account is %s, then it is skipped without asking the provider",
    async (_name, overrides, why) => {
      const { refresher, store, published, oauth, clock } = setup(async () => rotated);
      if (overrides) store.put(env, activeAccount(clock, overrides));

      const result = await refresher.refresh(env, accountId, { lastTry: false });

      expect(result).toEqual({ outcome: "skipped", why });
      expect(oauth.refreshes).toEqual([]);
      expect(store.writes).toBe(0);
      expect(published).toEqual([]);
    },
  );

  it("when the integration has lost its client secret, then NEEDS_REAUTH without asking the provider", async () => {
    const { refresher, store, published, oauth, clock } = setup(async () => rotated, [{ ...github, oauth2: settings }]);
    store.put(env, activeAccount(clock));

    const result = await refresher.refresh(env, accountId, { lastTry: false });

    const reason = 'integration "github" is gone or has no client secret';
    expect(result).toEqual({ outcome: "needs_reauth", reason });
    expect(oauth.refreshes).toEqual([]);
    expect(store.stored(env, accountId)).toMatchObject({ status: "needs_reauth", statusReason: reason });
    expect(published).toHaveLength(1);
  });
});

describe("a refresh bound to an incarnation of its environment", () => {
  it("when the job carries its incarnation, then its key and its write are bound to it", async () => {
    const { refresher, store, clock, keyRequests } = setup(async () => rotated);
    store.currentIncarnation = "1000";
    store.put(env, activeAccount(clock));

    expect(await refresher.refresh(env, accountId, { lastTry: false, incarnation: "1000" })).toEqual({
      outcome: "refreshed",
      credentialsVersion: 4,
    });
    expect(keyRequests).toEqual(["1000"]);
    expect(store.boundTo).toEqual(["1000"]);
  });

  it("when the environment is replaced while the provider answers, then the new tokens are not written and the job hears why", async () => {
    const held = deferred<TokenOutcome>();
    const { refresher, store, published, clock } = setup(() => held.promise);
    store.currentIncarnation = "1000";
    store.put(env, activeAccount(clock));

    const running = refresher.refresh(env, accountId, { lastTry: false, incarnation: "1000" });
    await settle();
    store.currentIncarnation = "2000";
    held.resolve(rotated);

    expect(await rejectionOf(running)).toBeInstanceOf(EnvironmentReplacedError);
    expect(store.writes).toBe(0);
    expect(store.stored(env, accountId).credentialsVersion).toBe(3);
    expect(published).toEqual([]);
  });

  it("when the environment was replaced before the refresh, then the provider is not called", async () => {
    const { refresher, store, oauth, clock } = setup(async () => rotated);
    store.currentIncarnation = "2000";
    store.put(env, activeAccount(clock));

    expect(
      await rejectionOf(refresher.refresh(env, accountId, { lastTry: false, incarnation: "1000" })),
    ).toBeInstanceOf(EnvironmentReplacedError);
    expect(oauth.refreshes).toEqual([]);
  });

  it("when the provider refuses and the environment was replaced meanwhile, then NEEDS_REAUTH is not written", async () => {
    const held = deferred<TokenOutcome>();
    const { refresher, store, clock } = setup(() => held.promise);
    store.currentIncarnation = "1000";
    store.put(env, activeAccount(clock));

    const running = refresher.refresh(env, accountId, { lastTry: false, incarnation: "1000" });
    await settle();
    store.currentIncarnation = "2000";
    held.resolve({ kind: "refused", error: "invalid_grant", reason: "the refresh token was revoked" });

    expect(await rejectionOf(running)).toBeInstanceOf(EnvironmentReplacedError);
    expect(store.stored(env, accountId).status).toBe("active");
  });

  it("when a sweep runs for an incarnation, then the refreshes it requests are bound to it", async () => {
    const clock = fakeClock();
    const bound: (string | undefined)[] = [];
    const sweep = createRefreshSweep({
      listDueForRefresh: async () => [activeAccount(clock)],
      refreshes: {
        async request(_environment, _requests, incarnation) {
          bound.push(incarnation);
        },
      },
      settings: async () => ({ refreshMarginMs: minute, refreshTokenKeepaliveMs: day }),
      clock,
    });

    await sweep(env, "1000");

    expect(bound).toEqual(["1000"]);
  });
});

describe("refresh sweep", () => {
  it("when accounts are due, then one refresh is requested per account with the margin and keepalive cutoffs", async () => {
    const clock = fakeClock();
    const listed: { environment: string; expiringBefore: Date; idleSince: Date }[] = [];
    const requested: [string, string, number][] = [];
    const batches: number[] = [];
    const due = ["acc_a", "acc_b", "acc_c"].map((id) => activeAccount(clock, { id }));
    const sweep = createRefreshSweep({
      async listDueForRefresh(environment, expiringBefore, idleSince) {
        listed.push({ environment, expiringBefore, idleSince });
        return due;
      },
      refreshes: {
        async request(environment, requests) {
          for (const r of requests) requested.push([environment, r.accountId, r.seenVersion]);
          batches.push(requests.length);
        },
      },
      settings: async () => ({ refreshMarginMs: 5 * minute, refreshTokenKeepaliveMs: 30 * day }),
      clock,
    });

    const result = await sweep(env);

    expect(result).toEqual({ queued: 3 });
    expect(requested).toEqual([
      [env, "acc_a", due[0]?.credentialsVersion],
      [env, "acc_b", due[1]?.credentialsVersion],
      [env, "acc_c", due[2]?.credentialsVersion],
    ]);
    expect(batches).toEqual([3]);
    const now = clock.now().getTime();
    expect(listed).toEqual([
      { environment: env, expiringBefore: new Date(now + 5 * minute), idleSince: new Date(now - 30 * day) },
    ]);
  });

  it("when no account is due, then nothing is requested", async () => {
    const requested: string[] = [];
    const sweep = createRefreshSweep({
      listDueForRefresh: async () => [],
      refreshes: {
        async request(_environment, requests) {
          requested.push(...requests.map((r) => r.accountId));
        },
      },
      settings: async () => ({ refreshMarginMs: minute, refreshTokenKeepaliveMs: day }),
      clock: fakeClock(),
    });

    expect(await sweep(env)).toEqual({ queued: 0 });
    expect(requested).toEqual([]);
  });
});
