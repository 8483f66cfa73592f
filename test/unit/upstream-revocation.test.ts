import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { sealCredentials } from "../../src/domain/accounts/account-common.js";
import type { Account, UpstreamRevocation } from "../../src/domain/accounts/accounts.js";
import { ProviderUnavailableError } from "../../src/domain/accounts/handshake.js";
import type { OAuthRevocationClient, RevocableTokenType, RevocationOutcome } from "../../src/domain/accounts/oauth.js";
import { createRevocationSweep, createUpstreamRevocations } from "../../src/domain/accounts/upstream-revocation.js";
import { createKeyring, seal } from "../../src/domain/crypto/envelope.js";
import { ConcurrentModificationError } from "../../src/domain/errors.js";
import { clientSecretBinding } from "../../src/domain/integrations/integration-service.js";
import type { Integration, OAuth2Settings } from "../../src/domain/integrations/integrations.js";
import { createHttpOAuthClient } from "../../src/providers/http-oauth-client.js";
import type { OutboundRequest } from "../../src/providers/outbound-http.js";
import { revocationBackoffMs, revocationJobOptions } from "../../src/queue/retry-policy.js";
import { FakeAccountStore, fakeClock, rejectionOf } from "../helpers/fakes.js";

const env = "env-a";
const dataKey = createKeyring(randomBytes(32)).createDataKey(env).key;
const accountId = "acc_0000000000000000000001";
const minute = 60_000;

const settings: OAuth2Settings = {
  authorizationUrl: "https://crm.test/authorize",
  tokenUrl: "https://crm.test/token",
  clientId: "client-id",
  scopes: ["contacts.read"],
  pkce: true,
  clientAuthMethod: "client_secret_basic",
  authorizationParams: {},
  scopeSeparator: " ",
  revocationUrl: "https://crm.test/revoke",
};

const crm: Integration = {
  name: "crm",
  displayName: "CRM",
  authType: "oauth2",
  oauth2: { ...settings, sealedClientSecret: seal(dataKey, "client-secret-1", clientSecretBinding(env, "crm")) },
  credentialCheck: {
    url: "https://crm.test/userinfo",
    method: "GET",
    placement: "bearer",
    parameterName: "",
    accountIdPath: "sub",
    accountNamePath: "name",
  },
  createTime: new Date(Date.UTC(2029, 0, 1)),
  updateTime: new Date(Date.UTC(2029, 0, 1)),
  version: 1,
};

/** An account as DeleteAccount leaves it when its integration has a revocation endpoint. */
function deletedAccount(clock: { now(): Date }, revocation: Partial<UpstreamRevocation> = {}): Account {
  const created = new Date(clock.now().getTime() - 60 * minute);
  const deleted = new Date(clock.now().getTime() - minute);
  return {
    id: accountId,
    integration: "crm",
    tenantId: "tenant-1",
    labels: { team: "red" },
    status: "disconnected",
    statusReason: "",
    authType: "oauth2",
    createTime: created,
    updateTime: deleted,
    credentials: {},
    credentialsVersion: 4,
    handshake: { attempt: 1, startTime: created },
    upstreamRevocation: {
      status: "pending",
      attempts: 0,
      lastError: "",
      updateTime: deleted,
      tokens: sealCredentials(dataKey, env, accountId, { access_token: "access-1", refresh_token: "refresh-1" }),
      ...revocation,
    },
    version: 7,
  };
}

type RevokeCall = { clientSecret: string; token: string; hint: RevocableTokenType };

/** A revocation endpoint whose answers the test gives, one per call (then `ok`), keeping every call. */
function fakeRevoker(...answers: RevocationOutcome[]): OAuthRevocationClient & { calls: RevokeCall[] } {
  const calls: RevokeCall[] = [];
  return {
    calls,
    async revoke(_settings, clientSecret, token, hint) {
      calls.push({ clientSecret, token, hint });
      return answers.shift() ?? { kind: "ok" };
    },
  };
}

function setup(oauth: OAuthRevocationClient, integrations: Integration[] = [crm]) {
  const clock = fakeClock();
  const store = new FakeAccountStore();
  const byName = new Map(integrations.map((i) => [i.name, i]));
  const revocations = createUpstreamRevocations({
    store,
    integrations: { get: async (_environment, name) => byName.get(name) },
    keys: { dataKey: async () => dataKey },
    oauth,
    clock,
  });
  return { revocations, store, clock };
}

const busy: RevocationOutcome = {
  kind: "unavailable",
  reason: "the revocation endpoint answered 503",
  retryAfterMs: 2_000,
};

describe("upstream revocation", () => {
  it("when the provider revokes both tokens, then it was sent the refresh token then the access token, and the revocation is done with the tokens gone", async () => {
    const oauth = fakeRevoker();
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    clock.advance(1_000);

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "done" });

    expect(oauth.calls).toEqual([
      { clientSecret: "client-secret-1", token: "refresh-1", hint: "refresh_token" },
      { clientSecret: "client-secret-1", token: "access-1", hint: "access_token" },
    ]);
    const stored = store.stored(env, accountId);
    expect(stored.upstreamRevocation).toEqual({ status: "done", attempts: 1, lastError: "", updateTime: clock.now() });
    expect(stored).toMatchObject({ status: "disconnected", labels: { team: "red" }, version: 8 });
  });

  it("when the provider refuses a token, then the revocation fails with its reason and the tokens are wiped", async () => {
    const oauth = fakeRevoker({
      kind: "refused",
      error: "invalid_client",
      reason: "the revocation endpoint answered 401: invalid_client",
    });
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({
      outcome: "failed",
      reason: "revoking the refresh token: the revocation endpoint answered 401: invalid_client",
    });
    expect(oauth.calls).toHaveLength(1);
    expect(store.stored(env, accountId).upstreamRevocation).toEqual({
      status: "failed",
      attempts: 1,
      lastError: "revoking the refresh token: the revocation endpoint answered 401: invalid_client",
      updateTime: clock.now(),
    });
  });

  it("when the provider cannot revoke one type of token (unsupported_token_type), then that token counts as done and the other is still revoked", async () => {
    const oauth = fakeRevoker({
      kind: "refused",
      error: "unsupported_token_type",
      reason: "the revocation endpoint answered 400: unsupported_token_type",
    });
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    expect((await revocations.run(env, accountId, { lastTry: false })).outcome).toBe("done");
    expect(oauth.calls).toHaveLength(2);
    expect(store.stored(env, accountId).upstreamRevocation).toMatchObject({ status: "done", lastError: "" });
  });

  it("when the provider is unavailable, then the attempt is counted, the revocation stays pending with its tokens, and a retryable error carries Retry-After; the retry finishes it", async () => {
    const oauth = fakeRevoker(busy);
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    const sealedBefore = store.stored(env, accountId).upstreamRevocation?.tokens;

    const error = await rejectionOf(revocations.run(env, accountId, { lastTry: false }));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as ProviderUnavailableError).retryAfterMs).toBe(2_000);
    const pending = store.stored(env, accountId).upstreamRevocation;
    expect(pending).toEqual({
      status: "pending",
      attempts: 1,
      lastError: "revoking the refresh token: the revocation endpoint answered 503",
      updateTime: clock.now(),
      tokens: sealedBefore,
    });

    clock.advance(5_000);
    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "done" });
    expect(oauth.calls.map((c) => c.hint)).toEqual(["refresh_token", "refresh_token", "access_token"]);
    expect(store.stored(env, accountId).upstreamRevocation).toEqual({
      status: "done",
      attempts: 2,
      lastError: "",
      updateTime: clock.now(),
    });
  });

  it("when the refresh token was revoked and the provider then went down, then the retry sends only the access token", async () => {
    const oauth = fakeRevoker({ kind: "ok" }, busy);
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));

    await rejectionOf(revocations.run(env, accountId, { lastTry: false }));
    expect(Object.keys(store.stored(env, accountId).upstreamRevocation?.tokens ?? {})).toEqual(["access_token"]);

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "done" });
    expect(oauth.calls.map((c) => [c.hint, c.token])).toEqual([
      ["refresh_token", "refresh-1"],
      ["access_token", "access-1"],
      ["access_token", "access-1"],
    ]);
  });

  it("when the provider is still unavailable on the job's last try, then the revocation gives up as failed and the tokens are wiped", async () => {
    const oauth = fakeRevoker(busy);
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock, { attempts: 7, lastError: "earlier" }));

    expect(await revocations.run(env, accountId, { lastTry: true })).toEqual({
      outcome: "failed",
      reason: "gave up: revoking the refresh token: the revocation endpoint answered 503",
    });
    expect(store.stored(env, accountId).upstreamRevocation).toEqual({
      status: "failed",
      attempts: 8,
      lastError: "gave up: revoking the refresh token: the revocation endpoint answered 503",
      updateTime: clock.now(),
    });
  });

  it("when no revocation is pending (none, done, failed) or the account is unknown, then the job skips without calling the provider or writing", async () => {
    const oauth = fakeRevoker();
    const { revocations, store, clock } = setup(oauth);
    const { upstreamRevocation: _none, ...withoutRevocation } = deletedAccount(clock);
    for (const account of [
      withoutRevocation,
      deletedAccount(clock, { status: "done", tokens: {} }),
      deletedAccount(clock, { status: "failed" }),
    ]) {
      store.put(env, account);
      expect(await revocations.run(env, accountId, { lastTry: false })).toMatchObject({ outcome: "skipped" });
    }
    expect(await revocations.run(env, "acc_0000000000000000000002", { lastTry: false })).toEqual({
      outcome: "skipped",
      why: "no such account in this environment",
    });
    expect(oauth.calls).toEqual([]);
    expect(store.writes + store.conflicts).toBe(0);
  });

  it("when another writer changes the account while the provider is asked, then the outcome is written over the account as it is now, keeping the other change", async () => {
    const oauth = fakeRevoker();
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    let raced = false;
    store.beforeUpdate = () => {
      if (raced) return;
      raced = true;
      store.change(env, accountId, { labels: { team: "blue" } });
    };

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "done" });

    expect(store.conflicts).toBe(1);
    const stored = store.stored(env, accountId);
    expect(stored.labels).toEqual({ team: "blue" });
    expect(stored.upstreamRevocation).toMatchObject({ status: "done", attempts: 1 });
    expect(stored.upstreamRevocation?.tokens).toBeUndefined();
    expect(stored.version).toBe(9);
  });

  it("when another run ended the revocation meanwhile, then this run writes nothing over it", async () => {
    const oauth = fakeRevoker(busy);
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    store.beforeUpdate = () => {
      store.beforeUpdate = undefined;
      store.change(env, accountId, {
        upstreamRevocation: { status: "done", attempts: 1, lastError: "", updateTime: clock.now() },
      });
    };

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({
      outcome: "skipped",
      why: "the revocation ended meanwhile",
    });
    expect(store.stored(env, accountId).upstreamRevocation).toEqual({
      status: "done",
      attempts: 1,
      lastError: "",
      updateTime: clock.now(),
    });
  });

  it("when the account was deleted again with new tokens while this run revoked the old ones, then it writes nothing and throws so that its retry revokes the new ones", async () => {
    const oauth = fakeRevoker();
    const { revocations, store, clock } = setup(oauth);
    store.put(env, deletedAccount(clock));
    store.beforeUpdate = () => {
      store.beforeUpdate = undefined;
      store.change(env, accountId, {
        upstreamRevocation: {
          status: "pending",
          attempts: 0,
          lastError: "",
          updateTime: clock.now(),
          tokens: sealCredentials(dataKey, env, accountId, { access_token: "access-2", refresh_token: "refresh-2" }),
        },
      });
    };

    expect(await rejectionOf(revocations.run(env, accountId, { lastTry: false }))).toBeInstanceOf(
      ConcurrentModificationError,
    );
    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "done" });
    expect(oauth.calls.map((c) => c.token)).toEqual(["refresh-1", "access-1", "refresh-2", "access-2"]);
  });

  it("when the integration is gone or lost its revocation_url, then the revocation fails saying so, without calling anyone, and the tokens are wiped", async () => {
    const { revocationUrl: _url, ...withoutUrl } = settings;
    const cases: [Integration[], string][] = [
      [[], 'integration "crm" no longer exists'],
      [
        [{ ...crm, oauth2: { ...withoutUrl, sealedClientSecret: "unused" } }],
        'integration "crm" no longer has a revocation_url',
      ],
    ];
    for (const [integrations, reason] of cases) {
      const oauth = fakeRevoker();
      const { revocations, store, clock } = setup(oauth, integrations);
      store.put(env, deletedAccount(clock));

      expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({ outcome: "failed", reason });
      expect(oauth.calls).toEqual([]);
      expect(store.stored(env, accountId).upstreamRevocation).toEqual({
        status: "failed",
        attempts: 0,
        lastError: reason,
        updateTime: clock.now(),
      });
    }
  });

  it("when the sealed tokens do not open (moved to another account), then the revocation fails and nothing is sent", async () => {
    const oauth = fakeRevoker();
    const { revocations, store, clock } = setup(oauth);
    store.put(
      env,
      deletedAccount(clock, {
        tokens: sealCredentials(dataKey, env, "acc_0000000000000000000009", { refresh_token: "refresh-9" }),
      }),
    );

    expect(await revocations.run(env, accountId, { lastTry: false })).toEqual({
      outcome: "failed",
      reason: "the stored tokens do not open",
    });
    expect(oauth.calls).toEqual([]);
    expect(store.stored(env, accountId).upstreamRevocation?.tokens).toBeUndefined();
  });

  it("when the sweep finds pending revocations older than its grace, then it queues each again for the sweep's incarnation", async () => {
    const clock = fakeClock();
    const asked: Date[] = [];
    const queued: [string, string, string | undefined][] = [];
    const sweep = createRevocationSweep({
      async listPendingRevocations(_environment, before) {
        asked.push(before);
        return [deletedAccount(clock), { ...deletedAccount(clock), id: "acc_0000000000000000000002" }];
      },
      revocations: {
        async enqueue(environment, id, incarnation) {
          queued.push([environment, id, incarnation]);
        },
      },
      clock,
      graceMs: 5 * minute,
    });

    expect(await sweep(env, "inc-1")).toEqual({ requeued: 2 });
    expect(asked).toEqual([new Date(clock.now().getTime() - 5 * minute)]);
    expect(queued).toEqual([
      [env, accountId, "inc-1"],
      [env, "acc_0000000000000000000002", "inc-1"],
    ]);
  });
});

describe("the HTTP revocation client (RFC 7009)", () => {
  function clientAnswering(status: number, text = "", headers: Record<string, string> = {}) {
    const sent: OutboundRequest[] = [];
    const client = createHttpOAuthClient({
      maxRetryAfterMs: 60_000,
      async send(request) {
        sent.push(request);
        return {
          kind: "response",
          response: {
            status,
            header: (name) => headers[name],
            contentType: "application/json",
            text,
            tooLarge: false,
          },
        };
      },
    });
    return { client, sent };
  }

  it("when it revokes with client_secret_basic, then it POSTs token and token_type_hint with a Basic header; 200 is revoked", async () => {
    const { client, sent } = clientAnswering(200);
    expect(await client.revoke(settings, "s3cret:x", "refresh-1", "refresh_token")).toEqual({ kind: "ok" });
    expect(sent).toHaveLength(1);
    const [request] = sent;
    expect(request?.url).toBe("https://crm.test/revoke");
    expect(request?.method).toBe("POST");
    expect(request?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from("client-id:s3cret%3Ax").toString("base64")}`);
    expect(Object.fromEntries(new URLSearchParams(request?.body))).toEqual({
      token: "refresh-1",
      token_type_hint: "refresh_token",
    });
  });

  it("when it revokes with client_secret_post, then the client id and secret are in the form, not a header", async () => {
    const { client, sent } = clientAnswering(200);
    const post = { ...settings, clientAuthMethod: "client_secret_post" as const };
    expect(await client.revoke(post, "s3cret", "access-1", "access_token")).toEqual({ kind: "ok" });
    expect(sent[0]?.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(sent[0]?.body))).toEqual({
      token: "access-1",
      token_type_hint: "access_token",
      client_id: "client-id",
      client_secret: "s3cret",
    });
  });

  it("when the endpoint answers 400 unsupported_token_type echoing the token, then it is refused with the code and the token masked", async () => {
    const { client } = clientAnswering(
      400,
      JSON.stringify({ error: "unsupported_token_type", error_description: "refresh-1 cannot be revoked" }),
    );
    expect(await client.revoke(settings, "s3cret", "refresh-1", "refresh_token")).toEqual({
      kind: "refused",
      error: "unsupported_token_type",
      reason: "the revocation endpoint answered 400: unsupported_token_type: *** cannot be revoked",
    });
  });

  it("when the endpoint answers 503 with Retry-After, then it is unavailable for that long", async () => {
    const { client } = clientAnswering(503, "", { "retry-after": "7" });
    expect(await client.revoke(settings, "s3cret", "refresh-1", "refresh_token")).toEqual({
      kind: "unavailable",
      reason: "the revocation endpoint answered 503",
      retryAfterMs: 7_000,
    });
  });

  it("when the integration has no revocation_url, then nothing is sent and it is refused", async () => {
    const { client, sent } = clientAnswering(200);
    const { revocationUrl: _url, ...without } = settings;
    expect(await client.revoke(without, "s3cret", "refresh-1", "refresh_token")).toMatchObject({
      kind: "refused",
      error: "no_revocation_endpoint",
    });
    expect(sent).toEqual([]);
  });
});

describe("the revocation retry policy", () => {
  it("when a revocation job retries, then it waits five provider steps first, doubling, at most five minutes, over 8 attempts", () => {
    expect(revocationJobOptions.attempts).toBe(8);
    const midpoints = [1, 2, 3, 7, 12].map((attemptsMade) => {
      const waits = Array.from({ length: 50 }, () => revocationBackoffMs(attemptsMade, undefined, 1_000));
      return (Math.min(...waits) + Math.max(...waits)) / 2;
    });
    for (const [i, expected] of [5_000, 10_000, 20_000, 300_000, 300_000].entries()) {
      expect(midpoints[i]).toBeGreaterThan(expected * 0.75);
      expect(midpoints[i]).toBeLessThan(expected * 1.25);
    }
    expect(revocationBackoffMs(2, 9_000, 1_000)).toBe(9_000);
  });
});
