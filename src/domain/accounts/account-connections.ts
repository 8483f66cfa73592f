import { createHash } from "node:crypto";
import { bindingFor, open, seal } from "../crypto/envelope.js";
import { FailedPreconditionError, invalidField, RoomkeyError } from "../errors.js";
import { claimIdempotencyKey } from "../idempotency.js";
import { newId } from "../ids.js";
import { integrationNotFound } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import {
  type AccountServiceDeps,
  accountDisconnected,
  type CompleteOAuthOptions,
  type ConnectAccountInput,
  checkEndUser,
  holdCredentials,
  oauthStateLifetimeMs,
  type StartOAuthInput,
  sealCredentials,
  tenantFor,
} from "./account-common.js";
import {
  type Account,
  type AccountStatus,
  type AccountView,
  type CredentialField,
  type KeyCredential,
  type OAuthState,
  toAccountView,
} from "./accounts.js";
import { authorizationUrl, hashState, newPkce, newState } from "./oauth.js";
import type { AccountIdempotencyRecord } from "./ports.js";

/** What connecting shares with the rest of the account service. */
export interface AccountAccess {
  read(environment: string, id: string): Promise<Account>;
  announce(environment: string, account: Account, previousStatus: AccountStatus | undefined): Promise<void>;
  change(
    environment: string,
    id: string,
    make: (account: Account) => { changes: Partial<Account>; unset?: (keyof Account)[] } | undefined,
  ): Promise<{ before: Account; after: Account }>;
}

function fingerprintOf(input: ConnectAccountInput): string {
  const labels = Object.entries(input.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const what = JSON.stringify([input.integration, input.tenantId, labels, input.credential, input.endUser ?? null]);
  return createHash("sha256").update(what).digest("hex");
}

/** The credential field the request must use for an integration's auth type. */
const credentialFieldFor = { api_key: "api_key", basic: "basic" } as const;

function fieldsOf(credential: KeyCredential): Partial<Record<CredentialField, string>> {
  return credential.kind === "api_key"
    ? { api_key: credential.apiKey }
    : { username: credential.username, password: credential.password };
}

/**
 * Connecting accounts: with an API key or basic credentials (ConnectAccount),
 * or through OAuth 2.0 (StartOAuthConnection, CompleteOAuthConnection). Each
 * creates or updates the account CONNECTING and queues its handshake.
 */
export function createAccountConnections(deps: AccountServiceDeps, { read, announce, change }: AccountAccess) {
  const { store, integrations, keys, handshakes, clock } = deps;

  /** Queues a handshake; if Redis refuses, the connecting sweep queues it later, so the call still succeeds. */
  async function startHandshake(environment: string, account: Account): Promise<void> {
    try {
      await handshakes.enqueue(environment, account.id, account.handshake.attempt);
    } catch (error) {
      deps.warn("could not queue a handshake; the connecting sweep will", {
        environment,
        account: account.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /**
   * Creates the account CONNECTING with its credential sealed, queues the
   * handshake, and returns at once. With an idempotency key, a repeat within
   * 24 hours returns the first account as it is now.
   */
  async function connect(
    environment: string,
    input: ConnectAccountInput,
  ): Promise<{ account: AccountView; replayed: boolean }> {
    if (input.accountId !== undefined) return { account: await reconnect(environment, input), replayed: false };
    checkEndUser(input.endUser);
    const tenantId = tenantFor(input);
    const integration = await integrations.get(environment, input.integration);
    if (!integration) throw integrationNotFound(environment, input.integration);
    if (integration.authType === "oauth2") {
      throw invalidField(
        "integration",
        `integration "${input.integration}" uses OAuth 2.0: connect its accounts with StartOAuthConnection`,
      );
    }
    const wanted = credentialFieldFor[integration.authType];
    if (input.credential.kind !== integration.authType) {
      throw invalidField(wanted, `integration "${input.integration}" takes a ${wanted} credential`);
    }
    const now = clock.now();
    let id = input.newAccountId ?? newId("acc", now);
    if (input.idempotencyKey) {
      const key = `connect-account:${input.idempotencyKey}`;
      const record: AccountIdempotencyRecord = { accountId: id, fingerprint: fingerprintOf(input), createTime: now };
      const existing = await claimIdempotencyKey(store, environment, key, record, input.idempotencyKey);
      if (existing) {
        const first = await store.get(environment, existing.accountId);
        if (first) return { account: toAccountView(first), replayed: true };
        // The first request stopped before it wrote its account: finish it under the same id.
        id = existing.accountId;
      }
    }
    const account: Account = {
      id,
      integration: integration.name,
      tenantId,
      labels: { ...input.labels },
      status: "connecting",
      statusReason: "",
      authType: integration.authType,
      createTime: now,
      updateTime: now,
      credentials: sealCredentials(await keys.dataKey(environment), environment, id, fieldsOf(input.credential)),
      credentialsVersion: 1,
      handshake: { attempt: 1, startTime: now },
      ...(input.endUser ? { endUser: input.endUser } : {}),
      ...(input.sessionId ? { connectSessionId: input.sessionId } : {}),
      version: 1,
    };
    try {
      await store.insert(environment, account);
    } catch (error) {
      // A concurrent request with the same key wrote it first.
      const first = await store.get(environment, id);
      if (first) return { account: toAccountView(first), replayed: true };
      throw error;
    }
    await startHandshake(environment, account);
    await announce(environment, account, undefined);
    return { account: toAccountView(account), replayed: false };
  }

  /**
   * Re-authorizes an API-key or basic account in place: it keeps its id, end
   * user, labels and history; the new credential is checked by a handshake,
   * and the old one is set aside until then (restored if the new one fails).
   */
  async function reconnect(environment: string, input: ConnectAccountInput): Promise<AccountView> {
    const accountId = input.accountId as string;
    const current = await read(environment, accountId);
    if (input.integration !== "" && input.integration !== current.integration) {
      throw invalidField("integration", `account "${accountId}" belongs to integration "${current.integration}"`);
    }
    if (current.authType === "oauth2") {
      throw invalidField(
        "account_id",
        `account "${accountId}" uses OAuth 2.0: re-authorize it with StartOAuthConnection`,
      );
    }
    if (input.credential.kind !== current.authType) {
      const wanted = credentialFieldFor[current.authType];
      throw invalidField(wanted, `account "${accountId}" takes a ${wanted} credential`);
    }
    const integration = await integrations.get(environment, current.integration);
    if (!integration) throw integrationNotFound(environment, current.integration);
    const credentials = sealCredentials(
      await keys.dataKey(environment),
      environment,
      accountId,
      fieldsOf(input.credential),
    );
    const now = clock.now();
    const { before, after } = await change(environment, accountId, (account) => {
      if (account.status === "disconnected") throw accountDisconnected(accountId);
      if (account.status === "connecting") {
        throw new FailedPreconditionError(
          "failed_precondition",
          "ACCOUNT_NOT_ACTIVE",
          `account "${accountId}" is connecting already; wait for its handshake to end`,
        );
      }
      return {
        changes: {
          status: "connecting",
          statusReason: "",
          credentials,
          credentialsVersion: account.credentialsVersion + 1,
          held: holdCredentials(account),
          handshake: { attempt: account.handshake.attempt + 1, startTime: now, reauthorizedFrom: account.status },
          updateTime: now,
          ...(input.sessionId ? { connectSessionId: input.sessionId } : {}),
          ...(Object.keys(input.labels).length > 0 ? { labels: { ...input.labels } } : {}),
        },
      };
    });
    await startHandshake(environment, after);
    await announce(environment, after, before.status);
    return toAccountView(after);
  }

  /** An account's integration, which must use OAuth 2.0. */
  async function oauthIntegration(environment: string, name: string): Promise<Integration> {
    const integration = await integrations.get(environment, name);
    if (!integration) throw integrationNotFound(environment, name);
    if (integration.authType !== "oauth2" || !integration.oauth2) {
      throw invalidField("integration", `integration "${name}" does not use OAuth 2.0: connect with ConnectAccount`);
    }
    return integration;
  }

  /**
   * Begins an OAuth connection (or a re-authorization of `accountId`): the
   * provider's authorization URL and a state that CompleteOAuthConnection
   * accepts for 10 minutes. Nothing is created until then.
   */
  async function startOAuth(
    environment: string,
    input: StartOAuthInput,
  ): Promise<{ authorizationUrl: string; state: string; stateExpireTime: Date }> {
    if (input.redirectUri === "") throw invalidField("redirect_uri", "is required");
    let integrationName = input.integration;
    let tenantId: string;
    if (!input.accountId) {
      checkEndUser(input.endUser);
      tenantId = tenantFor(input);
    } else {
      const account = await read(environment, input.accountId);
      if (account.authType !== "oauth2") {
        throw invalidField("account_id", `account "${account.id}" does not use OAuth 2.0`);
      }
      if (account.status === "disconnected") throw accountDisconnected(account.id);
      if (input.integration !== "" && input.integration !== account.integration) {
        throw invalidField("integration", `account "${account.id}" belongs to integration "${account.integration}"`);
      }
      integrationName = account.integration;
      tenantId = account.tenantId;
    }
    const integration = await oauthIntegration(environment, integrationName);
    const settings = integration.oauth2 as NonNullable<Integration["oauth2"]>;
    const now = clock.now();
    const state = newState(environment);
    const hash = hashState(state);
    // RFC 9700: PKCE S256 always, unless the integration says its provider refuses it.
    const pkce = settings.disablePkce ? undefined : newPkce();
    const record: OAuthState = {
      hash,
      integration: integration.name,
      tenantId,
      labels: { ...input.labels },
      redirectUri: input.redirectUri,
      accountId: input.accountId ?? input.newAccountId ?? newId("acc", now),
      reauthorize: input.accountId !== undefined,
      ...(input.endUser && !input.accountId ? { endUser: input.endUser } : {}),
      ...(input.sessionId ? { sessionId: input.sessionId } : {}),
      createTime: now,
      expireTime: new Date(now.getTime() + oauthStateLifetimeMs),
      version: 1,
    };
    if (pkce)
      record.sealedVerifier = seal(await keys.dataKey(environment), pkce.verifier, stateBinding(environment, hash));
    await store.insertState(environment, record);
    return {
      authorizationUrl: authorizationUrl(settings, {
        redirectUri: input.redirectUri,
        state,
        ...(pkce ? { codeChallenge: pkce.challenge } : {}),
      }),
      state,
      stateExpireTime: record.expireTime,
    };
  }

  /**
   * Finishes an OAuth connection: the account (new, or the one re-authorized)
   * becomes CONNECTING with the code sealed, and the handshake worker
   * exchanges it. A retry with the same state and code returns the same
   * account; a state is good for one code only.
   */
  async function completeOAuth(
    environment: string,
    stateValue: string,
    code: string,
    options: CompleteOAuthOptions = {},
  ): Promise<AccountView> {
    const hash = hashState(stateValue);
    const codeHash = createHash("sha256").update(code).digest("hex");
    const invalidState = (why: string) => invalidField("state", why);
    let state = await store.getState(environment, hash);
    if (!state || state.expireTime.getTime() <= clock.now().getTime()) {
      throw invalidState("is unknown or has expired; start the connection again");
    }
    const { session } = options;
    if (session !== undefined && (session === "any-session" ? !state.sessionId : state.sessionId !== session.id)) {
      throw new RoomkeyError(
        "permission_denied",
        "CONNECT_SESSION_NOT_ALLOWED",
        "state: this connection was not begun by this connect session",
        { method: "CompleteOAuthConnection" },
      );
    }
    await checkIssuer(environment, state, options.iss);
    if (state.usedWith === undefined && !(await store.useState(environment, state, codeHash))) {
      state = await store.getState(environment, hash);
      if (!state) throw invalidState("is unknown or has expired; start the connection again");
    }
    if (state.usedWith !== undefined && state.usedWith !== codeHash) {
      throw invalidState("was completed already with another code; start the connection again");
    }
    const pending = state;
    const key = await keys.dataKey(environment);
    const verifier =
      pending.sealedVerifier === undefined
        ? undefined
        : open(key, pending.sealedVerifier, stateBinding(environment, hash)).toString("utf8");
    const now = clock.now();
    const credentials = sealCredentials(key, environment, pending.accountId, {
      authorization_code: code,
      ...(verifier === undefined ? {} : { code_verifier: verifier }),
    });

    if (!pending.reauthorize) {
      const existing = await store.get(environment, pending.accountId);
      // A retry of a completion that already made its account.
      if (existing) return toAccountView(existing);
      const account: Account = {
        id: pending.accountId,
        integration: pending.integration,
        tenantId: pending.tenantId,
        labels: { ...pending.labels },
        status: "connecting",
        statusReason: "",
        authType: "oauth2",
        createTime: now,
        updateTime: now,
        credentials,
        credentialsVersion: 1,
        handshake: { attempt: 1, startTime: now, redirectUri: pending.redirectUri },
        ...(pending.endUser ? { endUser: pending.endUser } : {}),
        ...(pending.sessionId ? { connectSessionId: pending.sessionId } : {}),
        version: 1,
      };
      try {
        await store.insert(environment, account);
      } catch (error) {
        const first = await store.get(environment, account.id);
        if (first) return toAccountView(first);
        throw error;
      }
      await startHandshake(environment, account);
      await announce(environment, account, undefined);
      return toAccountView(account);
    }

    const { before, after } = await change(environment, pending.accountId, (account) => {
      if (account.status === "disconnected") {
        throw accountDisconnected(account.id, "was disconnected since the connection began");
      }
      // Already moved by this state (a retry): its handshake began after the state was made.
      return account.handshake.startTime.getTime() >= pending.createTime.getTime()
        ? undefined
        : {
            changes: {
              status: "connecting",
              statusReason: "",
              credentials,
              credentialsVersion: account.credentialsVersion + 1,
              // The old tokens stay set aside until the new ones work: a failed re-authorization restores them.
              held: holdCredentials(account),
              handshake: {
                attempt: account.handshake.attempt + 1,
                startTime: now,
                redirectUri: pending.redirectUri,
                reauthorizedFrom: account.held
                  ? (account.handshake.reauthorizedFrom ?? account.status)
                  : account.status,
              },
              updateTime: now,
              ...(pending.sessionId ? { connectSessionId: pending.sessionId } : {}),
              ...(Object.keys(pending.labels).length > 0 ? { labels: { ...pending.labels } } : {}),
            },
            unset: ["credentialsExpireTime"],
          };
    });
    if (before !== after) {
      await startHandshake(environment, after);
      await announce(environment, after, before.status);
    }
    return toAccountView(after);
  }

  /**
   * RFC 9207: an authorization response that names its issuer must name the
   * integration's. Anything else is a mix-up (the code may come from another
   * provider, or be meant for one): the state is spent, so the code can never
   * be completed with it, and nothing is sent anywhere.
   */
  async function checkIssuer(environment: string, state: OAuthState, given: string | undefined): Promise<void> {
    const iss = given ?? "";
    const integration = await integrations.get(environment, state.integration);
    const expected = integration?.oauth2?.issuer;
    // No issuer configured: a response naming none is the usual case. Configured: the provider sends `iss`,
    // so a response without it may come from another one (RFC 9207 section 2.4).
    if (expected === undefined ? iss === "" : iss === expected) return;
    if (state.usedWith === undefined) await store.useState(environment, state, "issuer-mismatch");
    throw new RoomkeyError(
      "invalid_argument",
      "OAUTH_ISSUER_MISMATCH",
      expected === undefined
        ? `iss: the authorization response names issuer "${iss}" but integration "${state.integration}" has none configured: refused as a possible mix-up; start the connection again`
        : iss === ""
          ? `iss: the authorization response names no issuer but integration "${state.integration}" expects "${expected}": refused as a possible mix-up; start the connection again`
          : `iss: the authorization response names issuer "${iss}", not "${expected}" of integration "${state.integration}": refused as a mix-up; start the connection again`,
      { integration: state.integration },
      [{ field: "iss", description: "is not the integration's issuer" }],
    );
  }

  /** What the hosted callback needs to know of a state before completing it; undefined when unknown or expired. */
  async function stateFacts(
    environment: string,
    stateValue: string,
  ): Promise<{ sessionId?: string; accountId: string; redirectUri: string } | undefined> {
    const state = await store.getState(environment, hashState(stateValue));
    if (!state || state.expireTime.getTime() <= clock.now().getTime()) return undefined;
    return {
      accountId: state.accountId,
      redirectUri: state.redirectUri,
      ...(state.sessionId ? { sessionId: state.sessionId } : {}),
    };
  }

  return { connect, startOAuth, completeOAuth, stateFacts };
}

/** Where a pending OAuth connection's sealed PKCE verifier belongs. */
function stateBinding(environment: string, stateHash: string): string {
  return bindingFor(environment, "oauth_state", stateHash, "code_verifier");
}
