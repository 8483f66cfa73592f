/**
 * Connect sessions of each environment: made by a platform backend
 * (CreateConnectSession), used by an end user's browser to connect one
 * account, or re-authorize one in place, and nothing else.
 */
import type { AccountService } from "../accounts/account-service.js";
import type { AccountEvent, AccountView, EndUser, KeyCredential } from "../accounts/accounts.js";
import { environmentOfState } from "../accounts/oauth.js";
import type { Clock } from "../clock.js";
import { isEnvironmentName } from "../environments/environment-name.js";
import { FailedPreconditionError, invalidField, NotFoundError, RoomkeyError } from "../errors.js";
import { newId } from "../ids.js";
import { integrationNotFound } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import {
  type ConnectIntegrationView,
  type ConnectSession,
  type ConnectSessionView,
  defaultSessionLifetimeMs,
  generateSessionSecret,
  hashSessionSecret,
  maxSessionAttempts,
  maxSessionLifetimeMs,
  originOf,
  type SessionFacts,
  sessionDisplayPrefix,
  sessionStatusAt,
  toSessionView,
} from "./connect-sessions.js";
import type { ConnectSessionStore, SessionInvalidations } from "./ports.js";

export interface ConnectSessionServiceDeps {
  store: ConnectSessionStore;
  accounts: Pick<AccountService, "get" | "connect" | "startOAuth" | "completeOAuth" | "stateSession">;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  invalidations: SessionInvalidations;
  /** The public base URL of the HTTP port (connect URLs, the OAuth callback); known once it listens. */
  publicUrl(): string;
  clock: Clock;
  warn(message: string, details: Record<string, unknown>): void;
}

export interface CreateConnectSessionInput {
  endUser: EndUser;
  tenantId: string;
  integrations: string[];
  accountId?: string;
  lifetimeMs?: number;
  allowedOrigins: string[];
  returnUrl?: string;
  labels: Record<string, string>;
  createdBy: string;
}

/** The path of the hosted connect page, and of the OAuth callback every provider sends end users back to. */
export const connectPagePath = "/connect";
export const oauthCallbackPath = "/connect/oauth/callback";

export type ConnectSessionService = ReturnType<typeof createConnectSessionService>;

function sessionNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "CONNECT_SESSION_NOT_FOUND",
    `connect session "${id}" does not exist in environment "${environment}"`,
    { environment, connect_session: id },
  );
}

/** A session call refused for what it asks (an integration, an account, a redirect it does not offer). */
export function notAllowed(method: string, why: string): RoomkeyError {
  return new RoomkeyError("permission_denied", "CONNECT_SESSION_NOT_ALLOWED", `${method}: ${why}`, { method });
}

function ended(session: ConnectSession, now: number): RoomkeyError | undefined {
  const status = sessionStatusAt(session, now);
  if (status === "revoked") {
    return new RoomkeyError(
      "unauthenticated",
      "CONNECT_SESSION_REVOKED",
      "authorization: the connect session was revoked",
    );
  }
  if (status === "expired") {
    return new RoomkeyError(
      "unauthenticated",
      "CONNECT_SESSION_EXPIRED",
      "authorization: the connect session has expired",
    );
  }
  return undefined;
}

function spent(): RoomkeyError {
  return new FailedPreconditionError(
    "failed_precondition",
    "CONNECT_SESSION_SPENT",
    "the connect session's account is ACTIVE: it connects nothing more (its status can still be read)",
  );
}

export function createConnectSessionService(deps: ConnectSessionServiceDeps) {
  const { store, accounts, integrations, clock } = deps;

  async function read(environment: string, id: string): Promise<ConnectSession> {
    const session = await store.get(environment, id);
    if (!session) throw sessionNotFound(environment, id);
    return session;
  }

  /** The session a caller holds, as stored now: refused once revoked or expired (the cache may lag by a message). */
  async function current(environment: string, facts: SessionFacts): Promise<ConnectSession> {
    const session = await read(environment, facts.id);
    const refusal = ended(session, clock.now().getTime());
    if (refusal) throw refusal;
    return session;
  }

  /** The integrations a session offers that exist now, in its order: never a secret or an endpoint. */
  async function offered(
    environment: string,
    session: Pick<ConnectSession, "integrations">,
  ): Promise<ConnectIntegrationView[]> {
    const found = await Promise.all(session.integrations.map((name) => integrations.get(environment, name)));
    return found
      .filter((i): i is Integration => i !== undefined)
      .map((i) => ({ name: i.name, displayName: i.displayName || i.name, authType: i.authType }));
  }

  function connectUrl(secret: string): string {
    return `${deps.publicUrl()}${connectPagePath}?session=${encodeURIComponent(secret)}`;
  }

  async function create(
    environment: string,
    input: CreateConnectSessionInput,
  ): Promise<{ session: ConnectSessionView; secret: string; connectUrl: string }> {
    if (input.endUser.id === "") throw invalidField("end_user.id", "is required");
    const lifetimeMs = input.lifetimeMs ?? defaultSessionLifetimeMs;
    if (lifetimeMs > maxSessionLifetimeMs) throw invalidField("lifetime", "must be at most 24 hours");
    for (const [i, origin] of input.allowedOrigins.entries()) {
      if (originOf(origin) !== origin) {
        throw invalidField(`allowed_origins[${i}]`, "must be an origin: scheme, host and port only, no path");
      }
      if (origin.startsWith("http://") && !/^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?$/.test(origin)) {
        throw invalidField(`allowed_origins[${i}]`, "must be https (http only for localhost)");
      }
    }
    if (input.returnUrl !== undefined) {
      const origin = originOf(input.returnUrl);
      if (!origin || !input.allowedOrigins.includes(origin)) {
        throw invalidField("return_url", "must be an http(s) URL on one of allowed_origins");
      }
    }
    let names = [...input.integrations];
    let tenantId = input.tenantId || input.endUser.id;
    if (input.accountId !== undefined) {
      const account = await accounts.get(environment, input.accountId);
      if (names.length > 0 && (names.length !== 1 || names[0] !== account.integration)) {
        throw invalidField("integrations", `must be empty or ["${account.integration}"]: the account's integration`);
      }
      if (account.endUser && account.endUser.id !== input.endUser.id) {
        throw invalidField("end_user.id", `account "${account.id}" belongs to end user "${account.endUser.id}"`);
      }
      if (account.status === "disconnected") {
        throw new FailedPreconditionError(
          "failed_precondition",
          "ACCOUNT_NOT_ACTIVE",
          `account "${account.id}" is disconnected: connect a new one instead`,
        );
      }
      names = [account.integration];
      tenantId = account.tenantId;
    }
    const found = await Promise.all(names.map((name) => integrations.get(environment, name)));
    found.forEach((integration, i) => {
      if (!integration) throw integrationNotFound(environment, names[i] as string);
    });
    const now = clock.now();
    const secret = generateSessionSecret(environment);
    const session: ConnectSession = {
      id: newId("cs", now),
      hash: hashSessionSecret(secret),
      displayPrefix: sessionDisplayPrefix(secret, environment),
      endUser: input.endUser,
      tenantId,
      integrations: names,
      ...(input.accountId === undefined ? {} : { accountId: input.accountId }),
      reauthorize: input.accountId !== undefined,
      allowedOrigins: [...input.allowedOrigins],
      ...(input.returnUrl === undefined ? {} : { returnUrl: input.returnUrl }),
      labels: { ...input.labels },
      createdBy: input.createdBy,
      createTime: now,
      expireTime: new Date(now.getTime() + lifetimeMs),
      attempts: 0,
      version: 1,
    };
    await store.insert(environment, session);
    return { session: toSessionView(session, now.getTime()), secret, connectUrl: connectUrl(secret) };
  }

  async function get(
    environment: string,
    id: string,
  ): Promise<{ session: ConnectSessionView; integrations: ConnectIntegrationView[] }> {
    const session = await read(environment, id);
    return {
      session: toSessionView(session, clock.now().getTime()),
      integrations: await offered(environment, session),
    };
  }

  /** Revokes a session; every replica refuses it once the invalidation arrives (pub/sub, well under a second). */
  async function revoke(environment: string, id: string): Promise<ConnectSessionView> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const session = await read(environment, id);
      const now = clock.now();
      if (session.revokeTime) return toSessionView(session, now.getTime());
      const after = await store.update(environment, session, { revokeTime: now });
      if (after) {
        if (!(await deps.invalidations.publish(environment, session.hash))) {
          deps.warn(
            "a connect session revocation could not be published; replicas drop it when their cache entry ends",
            {
              environment,
              connect_session: id,
            },
          );
        }
        return toSessionView(after, now.getTime());
      }
    }
    throw new RoomkeyError(
      "aborted",
      "CONCURRENT_MODIFICATION",
      `connect session "${id}" was changed concurrently; retry`,
    );
  }

  /**
   * Takes one of the session's connection attempts, refusing when it is
   * spent, out of attempts, or its account's handshake is still running.
   */
  async function beginAttempt(environment: string, facts: SessionFacts, method: string): Promise<ConnectSession> {
    for (let tries = 0; tries < 5; tries++) {
      const session = await current(environment, facts);
      if (session.spendTime) throw spent();
      if (session.accountId !== undefined) {
        const account = await accounts.get(environment, session.accountId).catch(() => undefined);
        if (account?.status === "active" && (!session.reauthorize || account.connectSessionId === session.id)) {
          await markSpent(environment, session.id);
          throw spent();
        }
        if (account?.status === "connecting") {
          throw new FailedPreconditionError(
            "failed_precondition",
            "ACCOUNT_NOT_ACTIVE",
            `${method}: the session's account is connecting; wait for its handshake to end`,
          );
        }
      }
      if (session.attempts >= maxSessionAttempts) {
        throw new RoomkeyError(
          "resource_exhausted",
          "CONNECT_SESSION_ATTEMPTS",
          `${method}: the connect session made ${maxSessionAttempts} connection attempts already; create a new one`,
        );
      }
      const after = await store.update(environment, session, { attempts: session.attempts + 1 });
      if (after) return after;
    }
    throw new RoomkeyError("aborted", "CONCURRENT_MODIFICATION", "the connect session was changed concurrently; retry");
  }

  function checkIntegration(session: ConnectSession, integration: string, method: string): string {
    const name =
      integration === "" && session.integrations.length === 1 ? (session.integrations[0] as string) : integration;
    if (!session.integrations.includes(name)) {
      throw notAllowed(method, `integration "${integration}" is not offered by this connect session`);
    }
    return name;
  }

  /** Remembers the account a session began (not for re-authorization: that account is the session's already). */
  async function noteAccount(environment: string, session: ConnectSession, accountId: string): Promise<void> {
    if (session.reauthorize) return;
    for (let tries = 0; tries < 5; tries++) {
      const now = await read(environment, session.id);
      if (now.accountId === accountId) return;
      if (await store.update(environment, now, { accountId })) return;
    }
  }

  /** ConnectAccount with a session: its end user, tenant and labels; an integration it offers. */
  async function connect(
    environment: string,
    facts: SessionFacts,
    input: { integration: string; credential: KeyCredential; accountId?: string },
  ): Promise<AccountView> {
    const session = await beginAttempt(environment, facts, "ConnectAccount");
    const integration = checkIntegration(session, input.integration, "ConnectAccount");
    if (input.accountId !== undefined && input.accountId !== session.accountId) {
      throw notAllowed("ConnectAccount", "account_id is not the account this connect session re-authorizes");
    }
    const { account } = await accounts.connect(environment, {
      integration,
      tenantId: session.tenantId,
      // A re-authorization keeps the account's labels.
      labels: session.reauthorize ? {} : session.labels,
      credential: input.credential,
      endUser: session.endUser,
      sessionId: session.id,
      ...(session.reauthorize && session.accountId ? { accountId: session.accountId } : {}),
    });
    await noteAccount(environment, session, account.id);
    return account;
  }

  /** StartOAuthConnection with a session: roomkey's callback unless a redirect URI on an allowed origin is given. */
  async function startOAuth(
    environment: string,
    facts: SessionFacts,
    input: { integration: string; redirectUri: string; accountId?: string },
  ) {
    const session = await beginAttempt(environment, facts, "StartOAuthConnection");
    const integration = checkIntegration(session, input.integration, "StartOAuthConnection");
    if (input.accountId !== undefined && input.accountId !== session.accountId) {
      throw notAllowed("StartOAuthConnection", "account_id is not the account this connect session re-authorizes");
    }
    let redirectUri = input.redirectUri;
    if (redirectUri === "") redirectUri = `${deps.publicUrl()}${oauthCallbackPath}`;
    else {
      const origin = originOf(redirectUri);
      if (!origin || !session.allowedOrigins.includes(origin)) {
        throw notAllowed(
          "StartOAuthConnection",
          "redirect_uri must be on one of the connect session's allowed origins",
        );
      }
    }
    return accounts.startOAuth(environment, {
      integration,
      tenantId: session.tenantId,
      // A re-authorization keeps the account's labels.
      labels: session.reauthorize ? {} : session.labels,
      redirectUri,
      endUser: session.endUser,
      sessionId: session.id,
      ...(session.reauthorize && session.accountId ? { accountId: session.accountId } : {}),
    });
  }

  /** CompleteOAuthConnection with a session: only a state this session began. */
  async function completeOAuth(
    environment: string,
    facts: SessionFacts,
    input: { state: string; code: string; iss?: string },
  ): Promise<AccountView> {
    const session = await current(environment, facts);
    const account = await accounts.completeOAuth(environment, input.state, input.code, {
      session: { id: session.id },
      ...(input.iss ? { iss: input.iss } : {}),
    });
    await noteAccount(environment, session, account.id);
    return account;
  }

  /** GetAccount with a session: only the account it connected or re-authorizes, while it lasts (spent or not). */
  async function getAccount(environment: string, facts: SessionFacts, id: string): Promise<AccountView> {
    const session = await current(environment, facts);
    if (session.accountId !== id)
      throw notAllowed("GetAccount", "a connect session reads only the account it connected");
    return accounts.get(environment, id);
  }

  async function getOwn(
    environment: string,
    facts: SessionFacts,
  ): Promise<{ session: ConnectSessionView; integrations: ConnectIntegrationView[] }> {
    const session = await current(environment, facts);
    return {
      session: toSessionView(session, clock.now().getTime()),
      integrations: await offered(environment, session),
    };
  }

  /** Marks a session spent (its account became ACTIVE); once only. */
  async function markSpent(environment: string, id: string): Promise<void> {
    for (let tries = 0; tries < 5; tries++) {
      const session = await store.get(environment, id);
      if (!session || session.spendTime) return;
      if (await store.update(environment, session, { spendTime: clock.now() })) return;
    }
  }

  /** Told of every account status change: an account a session made becoming ACTIVE spends that session. */
  async function accountChanged(environment: string, event: AccountEvent): Promise<void> {
    const { account } = event;
    if (account.status !== "active" || event.previousStatus === "active" || !account.connectSessionId) return;
    await markSpent(environment, account.connectSessionId);
  }

  /**
   * The hosted callback: the provider's redirect with a state a session began
   * and its code. The environment is in the state itself (one fixed callback
   * serves every environment).
   */
  async function completeCallback(input: {
    state: string;
    code: string;
    iss?: string;
  }): Promise<{ environment: string; session: ConnectSession; account: AccountView }> {
    const environment = stateEnvironment(input.state);
    const account = await accounts.completeOAuth(environment, input.state, input.code, {
      session: "any-session",
      ...(input.iss ? { iss: input.iss } : {}),
    });
    const sessionId = account.connectSessionId;
    if (!sessionId) throw invalidField("state", "was not begun by a connect session");
    const session = await read(environment, sessionId);
    await noteAccount(environment, session, account.id);
    return { environment, session: { ...session, accountId: account.id }, account };
  }

  /** The session whose OAuth attempt a state belongs to (a provider's error redirect), if any. */
  async function sessionOfState(state: string): Promise<{ environment: string; session: ConnectSession } | undefined> {
    const environment = environmentOfState(state);
    if (environment === undefined || !isEnvironmentName(environment)) return undefined;
    const id = await accounts.stateSession(environment, state).catch(() => undefined);
    const session = id === undefined ? undefined : await store.get(environment, id);
    return session ? { environment, session } : undefined;
  }

  function stateEnvironment(state: string): string {
    const environment = environmentOfState(state);
    if (environment === undefined || !isEnvironmentName(environment)) {
      throw invalidField("state", "is unknown or has expired; start the connection again");
    }
    return environment;
  }

  return {
    create,
    get,
    revoke,
    getOwn,
    connect,
    startOAuth,
    completeOAuth,
    getAccount,
    accountChanged,
    completeCallback,
    sessionOfState,
    offered,
    read,
  };
}
