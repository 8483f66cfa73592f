/**
 * Connect sessions of each environment: made by a platform backend
 * (CreateConnectSession), used by an end user's browser to connect one
 * account, or re-authorize one in place, and nothing else.
 */
import { accountDisconnected } from "../accounts/account-common.js";
import type { AccountService } from "../accounts/account-service.js";
import type { AccountEvent, AccountView, EndUser, KeyCredential } from "../accounts/accounts.js";
import { environmentOfState } from "../accounts/oauth.js";
import type { Clock } from "../clock.js";
import { isEnvironmentName } from "../environments/environment-name.js";
import {
  ConcurrentModificationError,
  FailedPreconditionError,
  invalidField,
  NotFoundError,
  RoomkeyError,
} from "../errors.js";
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
  reservationLeaseMs,
  type SessionFacts,
  sessionDisplayPrefix,
  sessionEndedError,
  sessionStatusAt,
  sessionWriteTries,
  toOwnSessionView,
  toSessionView,
} from "./connect-sessions.js";
import type { ConnectSessionStore, SessionInvalidations } from "./ports.js";

export interface ConnectSessionServiceDeps {
  store: ConnectSessionStore;
  accounts: Pick<AccountService, "get" | "connect" | "startOAuth" | "completeOAuth" | "stateFacts">;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  invalidations: SessionInvalidations;
  /** The public base URL of the HTTP port (connect URLs, the OAuth callback); known once it listens. */
  publicUrl(): string;
  /** Whether an environment is known to exist, from memory: a name in a made-up state costs no lookup. */
  environmentKnown(name: string): boolean;
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

/** A connection the session's account is busy with: the caller waits for it. */
function accountBusy(why: string): FailedPreconditionError {
  return new FailedPreconditionError("failed_precondition", "ACCOUNT_NOT_ACTIVE", why);
}

function concurrentlyChanged(id: string): ConcurrentModificationError {
  return new ConcurrentModificationError(`connect session "${id}"`);
}

/**
 * An account as a connect session reads it: enough to follow its connection,
 * not the platform's labels, tenant or the provider's identifiers.
 */
function forSession(account: AccountView): AccountView {
  return {
    id: account.id,
    integration: account.integration,
    tenantId: "",
    labels: {},
    status: account.status,
    statusReason: account.statusReason,
    authType: account.authType,
    createTime: account.createTime,
    updateTime: account.updateTime,
    ...(account.endUser ? { endUser: account.endUser } : {}),
    ...(account.reauthorizationFailed ? { reauthorizationFailed: true as const } : {}),
  };
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

  /** A session as stored now, refused once revoked or expired (a caller's cached verdict may lag by a message). */
  async function current(environment: string, id: string): Promise<ConnectSession> {
    const session = await read(environment, id);
    const status = sessionStatusAt(session, clock.now().getTime());
    if (status === "revoked" || status === "expired") throw sessionEndedError(status);
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

  /** roomkey's one OAuth callback, which the hosted page's connections use. */
  function callbackUrl(): string {
    return `${deps.publicUrl()}${oauthCallbackPath}`;
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
      if (account.status === "disconnected") throw accountDisconnected(account.id);
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
    for (let attempt = 0; attempt < sessionWriteTries; attempt++) {
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
    throw concurrentlyChanged(id);
  }

  /** An account of the session's, or undefined when it does not exist (yet). */
  async function find(environment: string, id: string): Promise<AccountView | undefined> {
    try {
      return await accounts.get(environment, id);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Refuses a connection when the session's account is ACTIVE (the session is
   * spent: marked so), or is connecting, or is being made by another call now.
   * `completing`: the account a completion makes or re-authorizes (its own
   * state's), which may differ from the session's latest.
   */
  async function assertCanConnect(
    environment: string,
    session: ConnectSession,
    method: string,
    completing?: string,
  ): Promise<void> {
    if (session.spendTime) throw spent();
    if (session.accountId === undefined) return;
    const account = await find(environment, session.accountId);
    if (session.reauthorize && (!account || account.status === "disconnected")) {
      throw accountDisconnected(
        session.accountId,
        `(which this connect session re-authorizes) is gone or disconnected`,
      );
    }
    if (account?.status === "active" && !account.reauthorizationFailed && account.connectSessionId === session.id) {
      await markSpent(environment, session.id);
      throw spent();
    }
    if (account?.status === "connecting" && account.id !== completing) {
      throw accountBusy(`${method}: the session's account is connecting; wait for its handshake to end`);
    }
    const reserved = session.reserveTime?.getTime() ?? 0;
    if (!account && session.reserveKind === "connect" && clock.now().getTime() - reserved < reservationLeaseMs) {
      throw accountBusy(`${method}: the session is connecting an account already; wait for it`);
    }
  }

  /**
   * Takes one of the session's connection attempts and, unless it
   * re-authorizes, reserves the id of the account the attempt makes, in one
   * version-checked write: a second attempt racing this one sees the
   * reservation and waits instead of making another account.
   */
  async function beginAttempt(
    environment: string,
    facts: SessionFacts,
    method: string,
    request: { kind: "connect" | "oauth"; integration: string; accountId?: string },
  ): Promise<{ session: ConnectSession; integration: string; newAccountId?: string }> {
    const { kind } = request;
    for (let tries = 0; tries < sessionWriteTries; tries++) {
      const session = await current(environment, facts.id);
      // What the session does not offer is refused before it costs an attempt.
      const integration = checkIntegration(session, request.integration, method);
      if (request.accountId !== undefined && request.accountId !== session.accountId) {
        throw notAllowed(method, "account_id is not the account this connect session re-authorizes");
      }
      await assertCanConnect(environment, session, method);
      if (session.attempts >= maxSessionAttempts) {
        throw new RoomkeyError(
          "resource_exhausted",
          "CONNECT_SESSION_ATTEMPTS",
          `${method}: the connect session made ${maxSessionAttempts} connection attempts already; create a new one`,
        );
      }
      const now = clock.now();
      const newAccountId = session.reauthorize ? undefined : newId("acc", now);
      const after = await store.update(environment, session, {
        attempts: session.attempts + 1,
        ...(newAccountId ? { accountId: newAccountId, reserveTime: now, reserveKind: kind } : {}),
      });
      if (after) return { session: after, integration, ...(newAccountId ? { newAccountId } : {}) };
    }
    throw concurrentlyChanged(facts.id);
  }

  function checkIntegration(session: ConnectSession, integration: string, method: string): string {
    const name =
      integration === "" && session.integrations.length === 1 ? (session.integrations[0] as string) : integration;
    if (!session.integrations.includes(name)) {
      throw notAllowed(method, `integration "${integration}" is not offered by this connect session`);
    }
    return name;
  }

  /** Makes `accountId` the session's account (a completion of an older OAuth attempt than its latest). */
  async function noteAccount(environment: string, session: ConnectSession, accountId: string): Promise<void> {
    if (session.reauthorize) return;
    for (let tries = 0; tries < sessionWriteTries; tries++) {
      const now = await read(environment, session.id);
      if (now.accountId === accountId) return;
      if (await store.update(environment, now, { accountId })) return;
    }
    throw concurrentlyChanged(session.id);
  }

  /**
   * Completes a state `session` began, through CompleteOAuthConnection or
   * the hosted callback: refused once the session is spent or busy with
   * another account; the completed account becomes the session's.
   */
  async function completeFor(
    environment: string,
    session: ConnectSession,
    input: { state: string; code: string; iss?: string },
    method: string,
    stateAccountId: string | undefined,
  ): Promise<AccountView> {
    await assertCanConnect(environment, session, method, stateAccountId);
    const account = await accounts.completeOAuth(environment, input.state, input.code, {
      session: { id: session.id },
      ...(input.iss === undefined ? {} : { iss: input.iss }),
    });
    await noteAccount(environment, session, account.id);
    return account;
  }

  /** ConnectAccount with a session: its end user, tenant and labels; an integration it offers. */
  async function connect(
    environment: string,
    facts: SessionFacts,
    input: { integration: string; credential: KeyCredential; accountId?: string },
  ): Promise<AccountView> {
    const { session, integration, newAccountId } = await beginAttempt(environment, facts, "ConnectAccount", {
      kind: "connect",
      integration: input.integration,
      ...(input.accountId === undefined ? {} : { accountId: input.accountId }),
    });
    const connecting = accounts.connect(environment, {
      integration,
      tenantId: session.tenantId,
      // A re-authorization keeps the account's labels.
      labels: session.reauthorize ? {} : session.labels,
      credential: input.credential,
      endUser: session.endUser,
      sessionId: session.id,
      ...(session.reauthorize && session.accountId ? { accountId: session.accountId } : {}),
      ...(newAccountId ? { newAccountId } : {}),
    });
    try {
      return forSession((await connecting).account);
    } catch (error) {
      // Refused before it made the account: the reservation ends, so the end user can try again at once.
      if (newAccountId) await store.update(environment, session, { reserveTime: new Date(0) }).catch(() => undefined);
      throw error;
    }
  }

  /** StartOAuthConnection with a session: roomkey's callback unless a redirect URI on an allowed origin is given. */
  async function startOAuth(
    environment: string,
    facts: SessionFacts,
    input: { integration: string; redirectUri: string; accountId?: string },
  ) {
    let redirectUri = input.redirectUri;
    if (redirectUri === "") redirectUri = callbackUrl();
    else {
      const origin = originOf(redirectUri);
      if (!origin || !facts.allowedOrigins.has(origin)) {
        throw notAllowed(
          "StartOAuthConnection",
          "redirect_uri must be on one of the connect session's allowed origins",
        );
      }
    }
    const { session, integration, newAccountId } = await beginAttempt(environment, facts, "StartOAuthConnection", {
      kind: "oauth",
      integration: input.integration,
      ...(input.accountId === undefined ? {} : { accountId: input.accountId }),
    });
    return accounts.startOAuth(environment, {
      integration,
      tenantId: session.tenantId,
      // A re-authorization keeps the account's labels.
      labels: session.reauthorize ? {} : session.labels,
      redirectUri,
      endUser: session.endUser,
      sessionId: session.id,
      ...(session.reauthorize && session.accountId ? { accountId: session.accountId } : {}),
      ...(newAccountId ? { newAccountId } : {}),
    });
  }

  /** CompleteOAuthConnection with a session: only a state this session began. */
  async function completeOAuth(
    environment: string,
    facts: SessionFacts,
    input: { state: string; code: string; iss?: string },
  ): Promise<AccountView> {
    const session = await current(environment, facts.id);
    const state = await accounts.stateFacts(environment, input.state);
    return forSession(await completeFor(environment, session, input, "CompleteOAuthConnection", state?.accountId));
  }

  /** GetAccount with a session: only the account it connected or re-authorizes, while it lasts (spent or not). */
  async function getAccount(environment: string, facts: SessionFacts, id: string): Promise<AccountView> {
    const session = await current(environment, facts.id);
    if (session.accountId !== id)
      throw notAllowed("GetAccount", "a connect session reads only the account it connected");
    return forSession(await accounts.get(environment, id));
  }

  async function getOwn(
    environment: string,
    facts: SessionFacts,
  ): Promise<{ session: ConnectSessionView; integrations: ConnectIntegrationView[] }> {
    const session = await current(environment, facts.id);
    return {
      session: toOwnSessionView(session, clock.now().getTime()),
      integrations: await offered(environment, session),
    };
  }

  /** GetConnectSession: by id with a token (or the admin key), or a session's own (its id or none). */
  function getFor(environment: string, facts: SessionFacts | undefined, id: string) {
    if (!facts) {
      if (id === "") throw invalidField("id", "is required unless called with a connect session");
      return get(environment, id);
    }
    if (id !== "" && id !== facts.id) throw notAllowed("GetConnectSession", "a connect session reads only itself");
    return getOwn(environment, facts);
  }

  /** Marks a session spent (its account became ACTIVE); once only. */
  async function markSpent(environment: string, id: string): Promise<void> {
    for (let tries = 0; tries < sessionWriteTries; tries++) {
      const session = await store.get(environment, id);
      if (!session || session.spendTime) return;
      if (await store.update(environment, session, { spendTime: clock.now() })) return;
    }
  }

  /** Told of every account status change: an account a session made becoming ACTIVE spends that session. */
  async function accountChanged(environment: string, event: AccountEvent): Promise<void> {
    const { account } = event;
    if (account.status !== "active" || event.previousStatus === "active" || !account.connectSessionId) return;
    if (account.reauthorizationFailed) return;
    await markSpent(environment, account.connectSessionId);
  }

  /**
   * The hosted callback: the provider's redirect with a state a session began
   * and its code. The environment is in the state itself (one fixed callback
   * serves every environment) and must be one this process knows, so a
   * made-up state costs no lookup. The session must still be open, and the
   * state's redirect URI this very callback (the exchange repeats it).
   */
  async function completeCallback(input: {
    state: string;
    code: string;
    iss?: string;
  }): Promise<{ environment: string; session: ConnectSession; account: AccountView }> {
    const unknownState = () => invalidField("state", "is unknown or has expired; start the connection again");
    const environment = stateEnvironment(input.state);
    if (environment === undefined) throw unknownState();
    const state = await accounts.stateFacts(environment, input.state);
    if (!state?.sessionId || state.redirectUri !== callbackUrl()) throw unknownState();
    const session = await current(environment, state.sessionId);
    const account = await completeFor(environment, session, input, "the OAuth callback", state.accountId);
    return { environment, session: { ...session, accountId: account.id }, account };
  }

  /** The session whose OAuth attempt a state belongs to (a provider's error redirect), if any. */
  async function sessionOfState(state: string): Promise<{ environment: string; session: ConnectSession } | undefined> {
    const environment = stateEnvironment(state);
    if (environment === undefined) return undefined;
    const id = (await accounts.stateFacts(environment, state))?.sessionId;
    const session = id === undefined ? undefined : await store.get(environment, id);
    return session ? { environment, session } : undefined;
  }

  /** The environment a state names, when this process knows it exists. */
  function stateEnvironment(state: string): string | undefined {
    const environment = environmentOfState(state);
    return environment !== undefined && isEnvironmentName(environment) && deps.environmentKnown(environment)
      ? environment
      : undefined;
  }

  return {
    create,
    get,
    getFor,
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
