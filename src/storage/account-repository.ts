import type { Collection, Filter } from "mongodb";
import type { Account, OAuthState } from "../domain/accounts/accounts.js";
import type { AccountIdempotencyRecord, AccountStore } from "../domain/accounts/ports.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import { EnvironmentReplacedError, type IncarnationSource } from "../domain/environments/environments.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";
import { compareAndSet, type WriteGuard } from "./versioned.js";

type AccountDocument = Omit<Account, "id"> & { _id: string };
type IdempotencyDocument = AccountIdempotencyRecord & { _id: string };
type StateDocument = Omit<OAuthState, "hash"> & { _id: string };

/** Integrated accounts, in each environment's own database. */
export const accountsCollection: CollectionSpec = {
  name: "accounts",
  indexes: [
    { key: { status: 1, integration: 1 }, name: "status_integration" },
    { key: { tenantId: 1 }, name: "tenant" },
    { key: { "endUser.id": 1 }, name: "end_user" },
    { key: { "endUser.tags": 1 }, name: "end_user_tags" },
  ],
};

/** ConnectAccount idempotency keys (`_id` is the key). */
export const accountKeysCollection: CollectionSpec = { name: "account_keys", indexes: [] };

/** Pending OAuth connections (`_id` is the SHA-256 of the state); expired ones are purged by the sweep. */
export const oauthStatesCollection: CollectionSpec = { name: "oauth_states", indexes: [] };

function toDomain({ _id, ...rest }: AccountDocument): Account {
  return { id: _id, ...rest };
}

/** A write bound to `incarnation`: it lands only while that is still the environment's current incarnation. */
function guardFor(incarnations: IncarnationSource, environment: string, incarnation: string): WriteGuard {
  return {
    incarnation,
    async check() {
      if ((await incarnations.currentIncarnation(environment)) !== incarnation) {
        throw new EnvironmentReplacedError(environment, incarnation);
      }
    },
  };
}

/**
 * Accounts of each environment in its own database; every change is
 * version-checked, and a change bound to an incarnation (by a job) is checked
 * against `incarnations`, the environment records, before it is written.
 */
export function createAccountRepository(databases: Pick<EnvironmentDatabases, "db">, incarnations: IncarnationSource) {
  const accounts = (environment: string): Collection<AccountDocument> =>
    databases.db(parseEnvironmentName(environment, "environment")).collection<AccountDocument>(accountsCollection.name);
  const keys = (environment: string): Collection<IdempotencyDocument> =>
    databases
      .db(parseEnvironmentName(environment, "environment"))
      .collection<IdempotencyDocument>(accountKeysCollection.name);
  const states = (environment: string): Collection<StateDocument> =>
    databases
      .db(parseEnvironmentName(environment, "environment"))
      .collection<StateDocument>(oauthStatesCollection.name);

  const store: AccountStore = {
    async insert(environment, account) {
      const { id, ...rest } = account;
      await accounts(environment).insertOne({ _id: id, ...rest });
    },
    async get(environment, id) {
      const doc = await accounts(environment).findOne({ _id: id });
      return doc ? toDomain(doc) : undefined;
    },
    async list(environment, filter, page) {
      const query: Filter<AccountDocument> = {};
      if (filter.integration !== undefined) query.integration = filter.integration;
      if (filter.status !== undefined) query.status = filter.status;
      if (filter.tenantId !== undefined) query.tenantId = filter.tenantId;
      if (filter.endUserId !== undefined) query["endUser.id"] = filter.endUserId;
      if (filter.endUserTag !== undefined) query["endUser.tags"] = filter.endUserTag;
      // Ids begin with their creation time: descending ids are newest first.
      if (page.after !== undefined) query._id = { $lt: page.after };
      const docs = await accounts(environment)
        .find(query)
        .sort({ _id: -1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map(toDomain);
    },
    async update(environment, account, changes, unset = [], incarnation) {
      // Account ids are never reused: the id is its own incarnation.
      const { id: _id, version: _version, ...set } = changes;
      const won = await compareAndSet(
        databases.db(parseEnvironmentName(environment, "environment")),
        accountsCollection.name,
        { id: account.id, incarnation: "" },
        account.version,
        set,
        unset,
        incarnation === undefined ? {} : { guard: guardFor(incarnations, environment, incarnation) },
      );
      if (!won) return undefined;
      const after: Account = { ...account, ...set, version: account.version + 1 };
      for (const field of unset) delete after[field];
      return after;
    },
    async claimIdempotency(environment, key, record) {
      try {
        await keys(environment).insertOne({ _id: key, ...record });
        return undefined;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        const existing = await keys(environment).findOne({ _id: key });
        if (!existing) return store.claimIdempotency(environment, key, record);
        const { _id, ...found } = existing;
        return found;
      }
    },
    async insertState(environment, state) {
      const { hash, ...rest } = state;
      await states(environment).insertOne({ _id: hash, ...rest });
    },
    async getState(environment, hash) {
      const doc = await states(environment).findOne({ _id: hash });
      if (!doc) return undefined;
      const { _id, ...rest } = doc;
      return { hash: _id, ...rest };
    },
    async useState(environment, state, usedWith) {
      return compareAndSet(
        databases.db(parseEnvironmentName(environment, "environment")),
        oauthStatesCollection.name,
        { id: state.hash, incarnation: "" },
        state.version,
        { usedWith },
      );
    },
    async replaceIdempotency(environment, key, expectedCreateTime, record) {
      // A stale key is taken over by one writer: the delete of the old record decides who.
      const removed = await keys(environment).deleteOne({ _id: key, createTime: expectedCreateTime });
      if (removed.deletedCount !== 1) return false;
      try {
        await keys(environment).insertOne({ _id: key, ...record });
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    },
  };

  return {
    ...store,
    /** Accounts CONNECTING that have not changed since `updatedBefore`, for the connecting sweep. */
    async listConnecting(environment: string, updatedBefore: Date): Promise<Account[]> {
      const docs = await accounts(environment)
        .find({ status: "connecting", updateTime: { $lt: updatedBefore } })
        .limit(1_000)
        .toArray();
      return docs.map(toDomain);
    },
    /** Removes ConnectAccount idempotency keys older than `before`. */
    async purgeKeys(environment: string, before: Date): Promise<number> {
      return (await keys(environment).deleteMany({ createTime: { $lt: before } })).deletedCount;
    },
    /** Removes OAuth states that expired before `before`. */
    async purgeStates(environment: string, before: Date): Promise<number> {
      return (await states(environment).deleteMany({ expireTime: { $lt: before } })).deletedCount;
    },
    /**
     * Active OAuth accounts whose access token expires before `expiringBefore`
     * or that were last refreshed before `idleSince`, for the refresh sweep.
     */
    async listDueForRefresh(environment: string, expiringBefore: Date, idleSince: Date): Promise<Account[]> {
      const docs = await accounts(environment)
        .find({
          status: "active",
          authType: "oauth2",
          $or: [{ credentialsExpireTime: { $lt: expiringBefore } }, { lastRefreshTime: { $lt: idleSince } }],
        })
        .limit(10_000)
        .toArray();
      return docs.map(toDomain);
    },
    /**
     * Disconnected accounts whose upstream revocation is still pending and
     * unchanged since `updatedBefore`, for the account sweep to queue again
     * (their job was lost). On the status index: only DeleteAccount begins one.
     */
    async listPendingRevocations(environment: string, updatedBefore: Date): Promise<Account[]> {
      const docs = await accounts(environment)
        .find({
          status: "disconnected",
          "upstreamRevocation.status": "pending",
          "upstreamRevocation.updateTime": { $lt: updatedBefore },
        })
        .limit(1_000)
        .toArray();
      return docs.map(toDomain);
    },
  };
}

/** The account queries environments and integrations need before they may be deleted. */
export function createAccountCounter(databases: Pick<EnvironmentDatabases, "db">) {
  return {
    async countActive(environment: string, integration?: string): Promise<number> {
      const filter: Record<string, string> = { status: "active" };
      if (integration !== undefined) filter.integration = integration;
      return databases
        .db(parseEnvironmentName(environment, "environment"))
        .collection(accountsCollection.name)
        .countDocuments(filter);
    },
  };
}
