import { describe, expect, it } from "vitest";
import { accountNotFound } from "../../src/domain/accounts/account-common.js";
import type { AccountView } from "../../src/domain/accounts/accounts.js";
import {
  type ConnectSessionServiceDeps,
  createConnectSessionService,
} from "../../src/domain/connect-sessions/connect-session-service.js";
import {
  type ConnectSession,
  generateSessionSecret,
  hashSessionSecret,
  inspectSessionSecret,
  sessionDisplayPrefix,
  sessionFactsOf,
  sessionStatusAt,
} from "../../src/domain/connect-sessions/connect-sessions.js";
import type { ConnectSessionStore } from "../../src/domain/connect-sessions/ports.js";
import { createSessionVerifier } from "../../src/domain/connect-sessions/session-verifier.js";
import type { Integration } from "../../src/domain/integrations/integrations.js";
import { asRoomkeyError, fakeClock, rejectionOf } from "../helpers/fakes.js";

describe("connect session secrets", () => {
  it("when made, then they read back as the environment's, and a changed character fails the checksum with no lookup", () => {
    const secret = generateSessionSecret("staging");
    expect(secret).toMatch(/^rkcs_staging_[0-9A-Za-z]{54}$/);
    expect(inspectSessionSecret(secret)).toEqual({ kind: "session", environment: "staging" });
    const last = secret.at(-10) === "a" ? "b" : "a";
    const typo = `${secret.slice(0, -10)}${last}${secret.slice(-9)}`;
    expect(inspectSessionSecret(typo)).toEqual({ kind: "bad_checksum", environment: "staging" });
    expect(inspectSessionSecret(secret.slice(0, -1))).toEqual({ kind: "malformed" });
    expect(inspectSessionSecret(secret.replace("rkcs_", "rk_"))).toEqual({ kind: "malformed" });
    expect(sessionDisplayPrefix(secret, "staging")).toBe(`${secret.slice(0, 17)}…`);
    expect(hashSessionSecret(secret)).toMatch(/^[0-9a-f]{64}$/);
  });
});

function session(overrides: Partial<ConnectSession> = {}): ConnectSession {
  const now = new Date(Date.UTC(2030, 0, 1));
  return {
    id: "cs_0000000000000000000001",
    hash: "h",
    displayPrefix: "rkcs_dev_abcd…",
    endUser: { id: "u1", displayName: "Ada", email: "", tags: [] },
    tenantId: "u1",
    integrations: ["keyed", "crm"],
    reauthorize: false,
    allowedOrigins: ["https://app.example"],
    labels: {},
    createdBy: "admin",
    createTime: now,
    expireTime: new Date(now.getTime() + 30 * 60_000),
    attempts: 0,
    version: 1,
    ...overrides,
  };
}

describe("the session verifier", () => {
  it("when a session is looked up once, then later calls are answered from memory until it is invalidated; expiry needs no invalidation", async () => {
    const clock = fakeClock();
    const secret = generateSessionSecret("dev");
    let stored = session({ hash: hashSessionSecret(secret), expireTime: new Date(clock.now().getTime() + 60_000) });
    let lookups = 0;
    const verifier = createSessionVerifier({
      store: {
        async findByHash(_environment, hash) {
          lookups++;
          return hash === stored.hash ? stored : undefined;
        },
      },
      environmentExists: async () => true,
      clock,
      ttlMs: 300_000,
      negativeTtlMs: 5_000,
      maxEntries: 100,
    });
    expect(await verifier.verify(secret, "dev")).toMatchObject({ status: "valid" });
    expect(verifier.verify(secret, "dev")).toMatchObject({ status: "valid" });
    expect(lookups).toBe(1);
    expect(verifier.verify(secret, "prod")).toEqual({ status: "wrong_environment", environment: "dev" });
    stored = { ...stored, revokeTime: clock.now() };
    expect(verifier.verify(secret, "dev")).toMatchObject({ status: "valid" });
    verifier.invalidate(stored.hash);
    expect(await verifier.verify(secret, "dev")).toMatchObject({ status: "revoked" });
    expect(lookups).toBe(2);

    const other = generateSessionSecret("dev");
    stored = session({ hash: hashSessionSecret(other), expireTime: new Date(clock.now().getTime() + 60_000) });
    expect(await verifier.verify(other, "dev")).toMatchObject({ status: "valid" });
    clock.advance(60_000);
    expect(verifier.verify(other, "dev")).toMatchObject({ status: "expired" });
    expect(await verifier.verify(generateSessionSecret("dev"), "dev")).toMatchObject({ status: "unknown" });
    expect(verifier.verifyFromMemory(other, "dev")).toBeUndefined();
  });
});

describe("where a session stands", () => {
  it("when revoked, expired and spent at once, then revoked wins, then expired, then spent", () => {
    const at = Date.UTC(2030, 0, 1);
    expect(sessionStatusAt(session(), at)).toBe("open");
    expect(sessionStatusAt(session({ spendTime: new Date(at) }), at)).toBe("spent");
    expect(sessionStatusAt(session({ spendTime: new Date(at), expireTime: new Date(at) }), at)).toBe("expired");
    expect(sessionStatusAt(session({ expireTime: new Date(at), revokeTime: new Date(at) }), at)).toBe("revoked");
  });
});

function memoryStore(): ConnectSessionStore & { sessions: Map<string, ConnectSession> } {
  const sessions = new Map<string, ConnectSession>();
  return {
    sessions,
    async insert(_environment, s) {
      sessions.set(s.id, s);
    },
    async get(_environment, id) {
      return sessions.get(id);
    },
    async findByHash(_environment, hash) {
      return [...sessions.values()].find((s) => s.hash === hash);
    },
    async update(_environment, s, changes) {
      const current = sessions.get(s.id);
      if (!current || current.version !== s.version) return undefined;
      const after = { ...current, ...changes, version: current.version + 1 };
      sessions.set(s.id, after);
      return after;
    },
  };
}

function serviceWith(overrides: Partial<ConnectSessionServiceDeps> = {}) {
  const store = memoryStore();
  const calls: { method: string; input: unknown }[] = [];
  const integration = (name: string, authType: Integration["authType"]): Integration => ({
    name,
    displayName: name.toUpperCase(),
    authType,
    credentialCheck: {
      url: "",
      method: "GET",
      placement: "bearer",
      parameterName: "",
      accountIdPath: "",
      accountNamePath: "",
    },
    createTime: new Date(0),
    updateTime: new Date(0),
    version: 1,
  });
  const account = (id: string, status: AccountView["status"] = "connecting"): AccountView => ({
    id,
    integration: "keyed",
    tenantId: "u1",
    labels: {},
    status,
    statusReason: "",
    authType: "api_key",
    createTime: new Date(0),
    updateTime: new Date(0),
  });
  const statuses = new Map<string, AccountView["status"]>();
  const sessionsOf = new Map<string, string>();
  const deps: ConnectSessionServiceDeps = {
    store,
    accounts: {
      async get(environment, id) {
        const status = statuses.get(id);
        if (!status) throw accountNotFound(environment, id);
        const sessionId = sessionsOf.get(id);
        return { ...account(id, status), ...(sessionId ? { connectSessionId: sessionId } : {}) };
      },
      async connect(_environment, input) {
        calls.push({ method: "connect", input });
        const id = input.newAccountId ?? "acc_0000000000000000000009";
        statuses.set(id, "connecting");
        if (input.sessionId) sessionsOf.set(id, input.sessionId);
        return { account: account(id), replayed: false };
      },
      async startOAuth(_environment, input) {
        calls.push({ method: "startOAuth", input });
        return { authorizationUrl: "https://provider.example/authorize", state: "s", stateExpireTime: new Date(0) };
      },
      async completeOAuth(_environment, state, code, options) {
        calls.push({ method: "completeOAuth", input: { state, code, options } });
        return account("acc_0000000000000000000009");
      },
      stateFacts: async () => undefined,
    },
    integrations: {
      async get(_environment, name) {
        if (name === "keyed") return integration("keyed", "api_key");
        if (name === "crm") return integration("crm", "oauth2");
        return undefined;
      },
    },
    invalidations: { publish: async () => true },
    publicUrl: () => "https://roomkey.example",
    environmentKnown: () => true,
    clock: fakeClock(),
    warn: () => undefined,
    ...overrides,
  };
  return { service: createConnectSessionService(deps), store, calls, statuses };
}

const input = {
  endUser: { id: "u1", displayName: "Ada", email: "", tags: [] },
  tenantId: "",
  integrations: ["keyed", "crm"],
  allowedOrigins: ["https://app.example", "http://localhost:3000"],
  labels: { from: "test" },
  createdBy: "admin",
};

describe("the connect session service", () => {
  it("when a session is made with a bad origin, return URL or lifetime, then INVALID_ARGUMENT names the field", async () => {
    const { service } = serviceWith();
    const cases: [Partial<typeof input> & Record<string, unknown>, string][] = [
      [{ allowedOrigins: ["https://app.example/"] }, "allowed_origins[0]"],
      [{ allowedOrigins: ["http://intranet.example"] }, "allowed_origins[0]"],
      [{ returnUrl: "https://elsewhere.example/done" }, "return_url"],
      [{ returnUrl: "javascript:alert(1)" }, "return_url"],
      [{ lifetimeMs: 24 * 3_600_000 + 1 }, "lifetime"],
    ];
    for (const [extra, field] of cases) {
      const error = asRoomkeyError(await rejectionOf(service.create("dev", { ...input, ...extra })));
      expect(error.fieldViolations[0]?.field, JSON.stringify(extra)).toBe(field);
    }
  });

  it("when a session connects, then it sets the end user, tenant and labels, keeps to its integrations, and counts its attempts", async () => {
    const { service, calls, store } = serviceWith();
    const { session: made, connectUrl, secret } = await service.create("dev", input);
    expect(connectUrl).toBe(`https://roomkey.example/connect?session=${secret}`);
    expect(made.tenantId).toBe("u1");
    const facts = sessionFactsOf(store.sessions.get(made.id) as ConnectSession, "dev");
    const denied = asRoomkeyError(
      await rejectionOf(
        service.connect("dev", facts, { integration: "other", credential: { kind: "api_key", apiKey: "k" } }),
      ),
    );
    expect(denied.reason).toBe("CONNECT_SESSION_NOT_ALLOWED");
    await service.connect("dev", facts, { integration: "keyed", credential: { kind: "api_key", apiKey: "k" } });
    expect(calls.at(-1)?.input).toMatchObject({
      integration: "keyed",
      tenantId: "u1",
      labels: { from: "test" },
      endUser: { id: "u1" },
      sessionId: made.id,
    });
    // The refused integration cost no attempt; the one made reserved the account's id first.
    const reserved = store.sessions.get(made.id)?.accountId;
    expect(store.sessions.get(made.id)).toMatchObject({ attempts: 1, reserveKind: "connect" });
    expect(calls.at(-1)?.input).toMatchObject({ newAccountId: reserved });
  });

  it("when its account is still connecting, then another attempt waits; when it is ACTIVE, then the session is spent", async () => {
    const { service, store, statuses } = serviceWith();
    const { session: made } = await service.create("dev", input);
    const facts = sessionFactsOf(store.sessions.get(made.id) as ConnectSession, "dev");
    await service.connect("dev", facts, { integration: "keyed", credential: { kind: "api_key", apiKey: "k" } });
    const busy = asRoomkeyError(
      await rejectionOf(service.startOAuth("dev", facts, { integration: "crm", redirectUri: "" })),
    );
    expect(busy.kind).toBe("failed_precondition");
    const id = store.sessions.get(made.id)?.accountId ?? "";
    statuses.set(id, "active");
    const spent = asRoomkeyError(
      await rejectionOf(service.startOAuth("dev", facts, { integration: "crm", redirectUri: "" })),
    );
    expect(spent.reason).toBe("CONNECT_SESSION_SPENT");
    expect(store.sessions.get(made.id)?.spendTime).toBeInstanceOf(Date);
    // Spent, it still reads its account.
    expect((await service.getAccount("dev", facts, id)).status).toBe("active");
  });

  it("when a session starts OAuth, then the redirect is roomkey's callback unless it names one on an allowed origin", async () => {
    const { service, store, calls } = serviceWith();
    const { session: made } = await service.create("dev", input);
    const facts = sessionFactsOf(store.sessions.get(made.id) as ConnectSession, "dev");
    await service.startOAuth("dev", facts, { integration: "crm", redirectUri: "" });
    expect(calls.at(-1)?.input).toMatchObject({ redirectUri: "https://roomkey.example/connect/oauth/callback" });
    await service.startOAuth("dev", facts, { integration: "crm", redirectUri: "https://app.example/cb" });
    expect(calls.at(-1)?.input).toMatchObject({ redirectUri: "https://app.example/cb" });
    const off = asRoomkeyError(
      await rejectionOf(
        service.startOAuth("dev", facts, { integration: "crm", redirectUri: "https://evil.example/cb" }),
      ),
    );
    expect(off.reason).toBe("CONNECT_SESSION_NOT_ALLOWED");
  });

  it("when a session completes OAuth, then the account service is told which session completes", async () => {
    const { service, store, calls } = serviceWith();
    const { session: made } = await service.create("dev", input);
    const facts = sessionFactsOf(store.sessions.get(made.id) as ConnectSession, "dev");
    await service.completeOAuth("dev", facts, { state: "dev.abc", code: "c", iss: "https://issuer.example" });
    expect(calls.at(-1)?.input).toEqual({
      state: "dev.abc",
      code: "c",
      options: { session: { id: made.id }, iss: "https://issuer.example" },
    });
  });

  it("when it is revoked, then the invalidation is published and every later call is refused", async () => {
    const published: string[] = [];
    const { service, store } = serviceWith({
      invalidations: {
        async publish(_environment, hash) {
          published.push(hash);
          return true;
        },
      },
    });
    const { session: made } = await service.create("dev", input);
    const facts = sessionFactsOf(store.sessions.get(made.id) as ConnectSession, "dev");
    expect((await service.revoke("dev", made.id)).status).toBe("revoked");
    expect(published).toEqual([store.sessions.get(made.id)?.hash]);
    // Even through facts cached before the revocation reached this replica.
    const refused = asRoomkeyError(await rejectionOf(service.getOwn("dev", facts)));
    expect(refused.reason).toBe("CONNECT_SESSION_REVOKED");
  });
});
