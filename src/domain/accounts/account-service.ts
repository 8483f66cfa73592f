import { createHash } from "node:crypto";
import { settlesWithin } from "../../async.js";
import type { Clock } from "../clock.js";
import { bindingFor, open, seal } from "../crypto/envelope.js";
import {
  ConcurrentModificationError,
  FailedPreconditionError,
  invalidField,
  NotFoundError,
  RoomkeyError,
} from "../errors.js";
import { claimIdempotencyKey, idempotencyWindowMs } from "../idempotency.js";
import { newId } from "../ids.js";
import type { DataKeySource } from "../integrations/integration-service.js";
import { integrationNotFound } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import {
  type Account,
  type AccountStatus,
  type AccountView,
  type Credential,
  type CredentialField,
  credentialBinding,
  type KeyCredential,
  type OAuthState,
  type SealedCredentials,
  toAccountView,
} from "./accounts.js";
import { authorizationUrl, hashState, newPkce, newState } from "./oauth.js";
import type {
  AccountEvents,
  AccountFilter,
  AccountIdempotencyRecord,
  AccountStore,
  HandshakeQueue,
  RefreshQueue,
} from "./ports.js";

/** How long a ConnectAccount idempotency key answers with the account it first created. */
export const accountIdempotencyWindowMs = idempotencyWindowMs;

/** How long an OAuth state from StartOAuthConnection is accepted. */
export const oauthStateLifetimeMs = 10 * 60_000;
/** An access token closer than this to its expiry is not handed out; it is refreshed first, however long that takes. */
export const stillUsableMs = 60_000;
/** How long GetAccountCredentials waits for a refresh before handing out an access token that still works. */
export const refreshPatienceMs = 5_000;

export interface AccountServiceDeps {
  store: AccountStore;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  events: AccountEvents;
  handshakes: HandshakeQueue;
  refreshes: RefreshQueue;
  /** The environment's OAuth refresh margin. */
  refreshMarginMs(environment: string): Promise<number>;
  /** How long a caller waits for a refresh it asked for. */
  refreshWaitMs: number;
  /** Pause between reads while waiting for a refresh. */
  pollMs?: number;
  clock: Clock;
  warn(message: string, details: Record<string, unknown>): void;
}

export interface StartOAuthInput {
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  redirectUri: string;
  accountId?: string;
}

export interface ConnectAccountInput {
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  credential: KeyCredential;
  idempotencyKey?: string;
}

export type AccountService = ReturnType<typeof createAccountService>;

export function accountNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "ACCOUNT_NOT_FOUND",
    `account "${id}" does not exist in environment "${environment}"`,
    { environment, account: id },
  );
}

/** Seals credential fields for one account of one environment. */
export function sealCredentials(
  key: Buffer,
  environment: string,
  accountId: string,
  fields: Partial<Record<CredentialField, string>>,
): SealedCredentials {
  const sealed: SealedCredentials = {};
  for (const [field, value] of Object.entries(fields) as [CredentialField, string | undefined][]) {
    if (value !== undefined) sealed[field] = seal(key, value, credentialBinding(environment, accountId, field));
  }
  return sealed;
}

/** Opens one sealed field, or throws DecryptionError if it was moved, tampered with or its key is gone. */
export function openCredential(
  key: Buffer,
  environment: string,
  accountId: string,
  field: CredentialField,
  sealed: string,
): string {
  return open(key, sealed, credentialBinding(environment, accountId, field)).toString("utf8");
}

function fieldsOf(credential: KeyCredential): Partial<Record<CredentialField, string>> {
  return credential.kind === "api_key"
    ? { api_key: credential.apiKey }
    : { username: credential.username, password: credential.password };
}

function fingerprintOf(input: ConnectAccountInput): string {
  const labels = Object.entries(input.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const what = JSON.stringify([input.integration, input.tenantId, labels, input.credential]);
  return createHash("sha256").update(what).digest("hex");
}

/** The credential field the request must use for an integration's auth type. */
const credentialFieldFor = { api_key: "api_key", basic: "basic" } as const;

/** Accounts of an environment, as callers see them through AccountService. */
export function createAccountService(deps: AccountServiceDeps) {
  const { store, integrations, keys, events, handshakes, clock } = deps;

  async function read(environment: string, id: string): Promise<Account> {
    const account = await store.get(environment, id);
    if (!account) throw accountNotFound(environment, id);
    return account;
  }

  async function announce(environment: string, account: Account, previousStatus: AccountStatus | undefined) {
    await events.publish(environment, {
      account: toAccountView(account),
      previousStatus: previousStatus ?? account.status,
      eventTime: account.updateTime,
    });
  }

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
    let id = newId("acc", now);
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
      tenantId: input.tenantId,
      labels: { ...input.labels },
      status: "connecting",
      statusReason: "",
      authType: integration.authType,
      createTime: now,
      updateTime: now,
      credentials: sealCredentials(await keys.dataKey(environment), environment, id, fieldsOf(input.credential)),
      credentialsVersion: 1,
      handshake: { attempt: 1, startTime: now },
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

  async function get(environment: string, id: string): Promise<AccountView> {
    return toAccountView(await read(environment, id));
  }

  async function list(environment: string, filter: AccountFilter, page: PageRequest): Promise<Page<AccountView>> {
    const items = await store.list(environment, filter, page);
    return toPage(items.map(toAccountView), page.size, (a) => a.id);
  }

  /** Applies a change to the account as it is now, re-reading when another writer got there first. */
  async function change(
    environment: string,
    id: string,
    make: (account: Account) => { changes: Partial<Account>; unset?: (keyof Account)[] } | undefined,
  ): Promise<{ before: Account; after: Account }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await read(environment, id);
      const planned = make(before);
      if (!planned) return { before, after: before };
      const after = await store.update(environment, before, planned.changes, planned.unset);
      if (after) return { before, after };
    }
    throw new ConcurrentModificationError(`account "${id}"`);
  }

  async function updateLabels(environment: string, id: string, labels: Record<string, string>): Promise<AccountView> {
    const { after } = await change(environment, id, () => ({
      changes: { labels: { ...labels }, updateTime: clock.now() },
    }));
    return toAccountView(after);
  }

  /** Wipes the credentials and sets DISCONNECTED; deleting again changes nothing. */
  async function disconnect(environment: string, id: string): Promise<AccountView> {
    const { before, after } = await change(environment, id, (account) =>
      account.status === "disconnected"
        ? undefined
        : {
            changes: {
              status: "disconnected",
              statusReason: "",
              credentials: {},
              credentialsVersion: account.credentialsVersion + 1,
              updateTime: clock.now(),
            },
            unset: ["credentialsExpireTime"],
          },
    );
    if (before !== after) await announce(environment, after, before.status);
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
    let integrationName = input.integration;
    let tenantId = input.tenantId;
    if (input.accountId) {
      const account = await read(environment, input.accountId);
      if (account.authType !== "oauth2") {
        throw invalidField("account_id", `account "${account.id}" does not use OAuth 2.0`);
      }
      if (input.integration !== "" && input.integration !== account.integration) {
        throw invalidField("integration", `account "${account.id}" belongs to integration "${account.integration}"`);
      }
      integrationName = account.integration;
      tenantId = account.tenantId;
    }
    const integration = await oauthIntegration(environment, integrationName);
    const settings = integration.oauth2 as NonNullable<Integration["oauth2"]>;
    const now = clock.now();
    const state = newState();
    const hash = hashState(state);
    const pkce = settings.pkce ? newPkce() : undefined;
    const record: OAuthState = {
      hash,
      integration: integration.name,
      tenantId,
      labels: { ...input.labels },
      redirectUri: input.redirectUri,
      accountId: input.accountId ?? newId("acc", now),
      reauthorize: input.accountId !== undefined,
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
  async function completeOAuth(environment: string, stateValue: string, code: string): Promise<AccountView> {
    const hash = hashState(stateValue);
    const codeHash = createHash("sha256").update(code).digest("hex");
    const invalidState = (why: string) => invalidField("state", why);
    let state = await store.getState(environment, hash);
    if (!state || state.expireTime.getTime() <= clock.now().getTime()) {
      throw invalidState("is unknown or has expired; start the connection again");
    }
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

    const { before, after } = await change(environment, pending.accountId, (account) =>
      // Already moved by this state (a retry): its handshake began after the state was made.
      account.handshake.startTime.getTime() >= pending.createTime.getTime() && account.status !== "disconnected"
        ? undefined
        : {
            changes: {
              status: "connecting",
              statusReason: "",
              credentials,
              credentialsVersion: account.credentialsVersion + 1,
              handshake: { attempt: account.handshake.attempt + 1, startTime: now, redirectUri: pending.redirectUri },
              updateTime: now,
              ...(Object.keys(pending.labels).length > 0 ? { labels: { ...pending.labels } } : {}),
            },
            unset: ["credentialsExpireTime"],
          },
    );
    if (before !== after) {
      await startHandshake(environment, after);
      await announce(environment, after, before.status);
    }
    return toAccountView(after);
  }

  const refreshing = new Map<string, Promise<Account>>();

  /**
   * Has the account's credentials refreshed by the rotation worker and waits
   * for the new ones. Concurrent callers on this replica share one wait, and
   * the job id per account makes callers on every replica share one refresh.
   */
  function refreshNow(environment: string, account: Account): Promise<Account> {
    const key = `${environment}/${account.id}`;
    let pending = refreshing.get(key);
    if (!pending) {
      pending = (async () => {
        await deps.refreshes.request(environment, [{ accountId: account.id, seenVersion: account.credentialsVersion }]);
        const deadline = Date.now() + deps.refreshWaitMs;
        while (Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, deps.pollMs ?? 50));
          const now = await read(environment, account.id);
          if (now.credentialsVersion !== account.credentialsVersion || now.status !== account.status) return now;
        }
        throw new RoomkeyError(
          "unavailable",
          "PROVIDER_UNAVAILABLE",
          `the credentials of account "${account.id}" could not be refreshed within ${deps.refreshWaitMs} ms; retry`,
          { account: account.id },
        );
      })().finally(() => refreshing.delete(key));
      refreshing.set(key, pending);
    }
    return pending;
  }

  /**
   * The account after a refresh. While its access token still works (for more
   * than `stillUsableMs`), a refresh that cannot finish soon (the provider is
   * slow or down) does not hold the caller: the current token is handed out
   * and the rotation worker keeps trying. A token past that is only ever
   * replaced, never handed out.
   */
  async function refreshedOrCurrent(environment: string, account: Account, leftMs: number): Promise<Account> {
    const pending = refreshNow(environment, account);
    const usableMs = leftMs - stillUsableMs;
    if (usableMs <= 0) return pending;
    pending.catch(() => undefined);
    const waitMs = Math.min(deps.refreshWaitMs, usableMs, refreshPatienceMs);
    if (await settlesWithin(pending, waitMs)) {
      try {
        return await pending;
      } catch (error) {
        deps.warn("refresh failed; handing out the access token that still works", { account: account.id, error });
      }
    }
    return read(environment, account.id);
  }

  function notActive(account: Account): FailedPreconditionError {
    const why = account.statusReason ? ` (${account.statusReason})` : "";
    return new FailedPreconditionError(
      "failed_precondition",
      "ACCOUNT_NOT_ACTIVE",
      `account "${account.id}" is ${account.status}${why}; only an active account has usable credentials`,
      { account: account.id, status: account.status },
    );
  }

  /** RefreshAccountCredentials: an OAuth account's access token is refreshed now. */
  async function refresh(environment: string, id: string): Promise<AccountView> {
    const account = await read(environment, id);
    if (account.authType !== "oauth2") {
      throw invalidField("id", `account "${id}" does not use OAuth 2.0; only OAuth credentials are refreshed`);
    }
    if (account.status !== "active") throw notActive(account);
    const after = await refreshNow(environment, account);
    if (after.status !== "active") throw notActive(after);
    return toAccountView(after);
  }

  /**
   * The decrypted credential of an ACTIVE account. An OAuth access token that
   * expires within the environment's refresh margin is refreshed first.
   */
  async function credentials(environment: string, id: string): Promise<Credential> {
    let account = await read(environment, id);
    if (account.status !== "active") throw notActive(account);
    if (account.authType === "oauth2" && account.credentialsExpireTime !== undefined) {
      const margin = await deps.refreshMarginMs(environment);
      const leftMs = account.credentialsExpireTime.getTime() - clock.now().getTime();
      if (leftMs <= margin) {
        account = await refreshedOrCurrent(environment, account, leftMs);
        if (account.status !== "active") throw notActive(account);
      }
    }
    const key = await keys.dataKey(environment);
    const current = account;
    const opened = (field: CredentialField): string => {
      const sealed = current.credentials[field];
      if (sealed === undefined) throw notActive(current);
      return openCredential(key, environment, id, field, sealed);
    };
    switch (account.authType) {
      case "api_key":
        return { kind: "api_key", apiKey: opened("api_key") };
      case "basic":
        return { kind: "basic", username: opened("username"), password: opened("password") };
      case "oauth2":
        return {
          kind: "oauth2",
          accessToken: opened("access_token"),
          tokenType: account.tokenType ?? "Bearer",
          ...(account.credentialsExpireTime ? { expireTime: account.credentialsExpireTime } : {}),
          scopes: account.scopes ?? [],
        };
    }
  }

  return {
    connect,
    get,
    list,
    updateLabels,
    disconnect,
    credentials,
    startOAuth,
    completeOAuth,
    refresh,
  };
}

/** Where a pending OAuth connection's sealed PKCE verifier belongs. */
function stateBinding(environment: string, stateHash: string): string {
  return bindingFor(environment, "oauth_state", stateHash, "code_verifier");
}

export type {
  AccountEvents,
  AccountFilter,
  AccountIdempotencyRecord,
  AccountStore,
  HandshakeQueue,
  RefreshQueue,
  RefreshRequest,
} from "./ports.js";
