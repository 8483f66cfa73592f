import { createHash } from "node:crypto";
import type { Clock } from "../clock.js";
import { open, seal } from "../crypto/envelope.js";
import { ConcurrentModificationError, FailedPreconditionError, invalidField, NotFoundError } from "../errors.js";
import { newId } from "../ids.js";
import type { DataKeySource } from "../integration-service.js";
import { integrationNotFound } from "../integration-service.js";
import type { Integration } from "../integrations.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import {
  type Account,
  type AccountEvent,
  type AccountStatus,
  type AccountView,
  type Credential,
  type CredentialField,
  credentialBinding,
  type SealedCredentials,
  toAccountView,
} from "./accounts.js";

const hour = 3_600_000;
/** How long a ConnectAccount idempotency key answers with the account it first created. */
export const accountIdempotencyWindowMs = 24 * hour;

export interface AccountFilter {
  integration?: string;
  status?: AccountStatus;
  tenantId?: string;
}

/** What ConnectAccount remembers of a request under its idempotency key. */
export interface AccountIdempotencyRecord {
  accountId: string;
  fingerprint: string;
  createTime: Date;
}

/** Persistence of one environment's accounts. */
export interface AccountStore {
  insert(environment: string, account: Account): Promise<void>;
  get(environment: string, id: string): Promise<Account | undefined>;
  /** Up to `page.size + 1` accounts matching `filter`, newest first, after `page.after`. */
  list(environment: string, filter: AccountFilter, page: PageRequest): Promise<Account[]>;
  /**
   * Moves `account` (as read, at its version) to the next version with
   * `changes`, removing `unset`: the account afterwards, or undefined if
   * another writer moved it first.
   */
  update(
    environment: string,
    account: Account,
    changes: Partial<Account>,
    unset?: readonly (keyof Account)[],
  ): Promise<Account | undefined>;
  /** Records `record` under `key` unless one is there: then returns the one that is. */
  claimIdempotency(
    environment: string,
    key: string,
    record: AccountIdempotencyRecord,
  ): Promise<AccountIdempotencyRecord | undefined>;
  /** Replaces the record under `key` if it is still the one created at `expectedCreateTime`. */
  replaceIdempotency(
    environment: string,
    key: string,
    expectedCreateTime: Date,
    record: AccountIdempotencyRecord,
  ): Promise<boolean>;
}

/** Where status changes go: to every WatchAccounts on every replica. Best effort. */
export interface AccountEvents {
  publish(environment: string, event: AccountEvent): Promise<void>;
}

/** Puts an account's handshake on its environment's handshake queue. */
export interface HandshakeQueue {
  enqueue(environment: string, accountId: string, attempt: number): Promise<void>;
}

export interface AccountServiceDeps {
  store: AccountStore;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  events: AccountEvents;
  handshakes: HandshakeQueue;
  clock: Clock;
  warn(message: string, details: Record<string, unknown>): void;
}

export interface ConnectAccountInput {
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  credential: Credential;
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

function fieldsOf(credential: Credential): Partial<Record<CredentialField, string>> {
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
      for (let attempt = 0; ; attempt++) {
        const existing = await store.claimIdempotency(environment, key, record);
        if (!existing) break;
        if (now.getTime() - existing.createTime.getTime() >= accountIdempotencyWindowMs) {
          if (await store.replaceIdempotency(environment, key, existing.createTime, record)) break;
          if (attempt < 3) continue;
          throw new ConcurrentModificationError(`idempotency key "${input.idempotencyKey}"`);
        }
        if (existing.fingerprint !== record.fingerprint) {
          throw new FailedPreconditionError(
            "failed_precondition",
            "IDEMPOTENCY_KEY_REUSED",
            "idempotency_key: was used within 24 hours for a different request",
            { field: "idempotency_key" },
          );
        }
        const first = await store.get(environment, existing.accountId);
        if (first) return { account: toAccountView(first), replayed: true };
        // The first request stopped before it wrote its account: finish it under the same id.
        id = existing.accountId;
        break;
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

  /** The decrypted credential of an ACTIVE account. */
  async function credentials(environment: string, id: string): Promise<Credential> {
    const account = await read(environment, id);
    if (account.status !== "active") {
      throw new FailedPreconditionError(
        "failed_precondition",
        "ACCOUNT_NOT_ACTIVE",
        `account "${id}" is ${account.status}; only an active account has usable credentials`,
        { account: id, status: account.status },
      );
    }
    const key = await keys.dataKey(environment);
    const opened = (field: CredentialField): string => {
      const sealed = account.credentials[field];
      if (sealed === undefined) {
        throw new FailedPreconditionError(
          "failed_precondition",
          "ACCOUNT_NOT_ACTIVE",
          `account "${id}" has no stored ${field}`,
          { account: id },
        );
      }
      return openCredential(key, environment, id, field, sealed);
    };
    if (account.authType === "api_key") return { kind: "api_key", apiKey: opened("api_key") };
    if (account.authType === "basic") {
      return { kind: "basic", username: opened("username"), password: opened("password") };
    }
    throw new FailedPreconditionError(
      "failed_precondition",
      "ACCOUNT_NOT_ACTIVE",
      `account "${id}" uses OAuth 2.0, which this server cannot hand out yet`,
      { account: id },
    );
  }

  return { connect, get, list, updateLabels, disconnect, credentials };
}
