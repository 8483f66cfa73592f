import type { Collection, Filter } from "mongodb";
import type { PageRequest } from "../domain/paging.js";
import type { TokenMaintenanceStore } from "../domain/tokens/token-maintenance.js";
import type { IdempotencyRecord, TokenStore } from "../domain/tokens/token-service.js";
import type { TokenLookup } from "../domain/tokens/token-verifier.js";
import type { Token, TokenState } from "../domain/tokens/tokens.js";
import type { UsageWriter } from "../domain/tokens/usage-recorder.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";

type TokenDocument = Omit<Token, "id" | "environment"> & { _id: string };
type IdempotencyDocument = IdempotencyRecord & { _id: string };

export const tokensCollection: CollectionSpec = {
  name: "tokens",
  indexes: [
    { key: { hash: 1 }, name: "hash", unique: true },
    { key: { state: 1, expireTime: 1 }, name: "state_expire" },
    { key: { graceExpireTime: 1 }, name: "grace_expire" },
  ],
};

/** Idempotency keys of the environment's create calls, purged after 24 hours by the rotation worker. */
export const idempotencyCollection: CollectionSpec = { name: "idempotency", indexes: [] };

function toDomain(environment: string, { _id, ...rest }: TokenDocument): Token {
  return { id: _id, environment, ...rest };
}

function toDocument({ id, environment: _environment, ...rest }: Token): TokenDocument {
  return { _id: id, ...rest };
}

const notRevoked = { revokeTime: { $exists: false } };
const notRotated = { rotateTime: { $exists: false } };

/** The query for tokens in `state` at `now`; it mirrors `stateAt`. */
function stateFilter(state: TokenState, now: Date): Filter<TokenDocument> {
  switch (state) {
    case "revoked":
      return { revokeTime: { $exists: true } };
    case "rotated":
      return { ...notRevoked, rotateTime: { $exists: true } };
    case "expired":
      return { ...notRevoked, ...notRotated, expireTime: { $lte: now } };
    case "active":
      return { ...notRevoked, ...notRotated, $or: [{ expireTime: { $exists: false } }, { expireTime: { $gt: now } }] };
  }
}

export type TokenRepository = TokenStore & TokenLookup & UsageWriter & TokenMaintenanceStore;

/** API tokens and idempotency keys, in each environment's own database. */
export function createTokenRepository(databases: Pick<EnvironmentDatabases, "db">): TokenRepository {
  const tokens = (environment: string): Collection<TokenDocument> =>
    databases.db(environment).collection<TokenDocument>(tokensCollection.name);
  const keys = (environment: string): Collection<IdempotencyDocument> =>
    databases.db(environment).collection<IdempotencyDocument>(idempotencyCollection.name);
  const found = (environment: string, doc: TokenDocument | null) => (doc ? toDomain(environment, doc) : undefined);

  return {
    async insert(environment, token) {
      try {
        await tokens(environment).insertOne(toDocument(token));
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    },
    async get(environment, id) {
      return found(environment, await tokens(environment).findOne({ _id: id }));
    },
    async findByHash(environment, hash) {
      return found(environment, await tokens(environment).findOne({ hash }));
    },
    async list(environment, filter, page: PageRequest) {
      const query: Filter<TokenDocument> = filter.state ? stateFilter(filter.state, filter.now) : {};
      if (page.after !== undefined) query._id = { $lt: page.after };
      const docs = await tokens(environment)
        .find(query)
        .sort({ _id: -1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map((doc) => toDomain(environment, doc));
    },
    async revoke(environment, id, at) {
      const updated = await tokens(environment).findOneAndUpdate(
        { _id: id, ...notRevoked },
        { $set: { revokeTime: at, state: "revoked" }, $inc: { version: 1 } },
        { returnDocument: "after" },
      );
      return found(environment, updated ?? (await tokens(environment).findOne({ _id: id })));
    },
    async markRotated(environment, id, expectedVersion, rotation) {
      const updated = await tokens(environment).findOneAndUpdate(
        { _id: id, version: expectedVersion, ...notRevoked, ...notRotated },
        { $set: { ...rotation, state: "rotated" }, $inc: { version: 1 } },
        { returnDocument: "after" },
      );
      return found(environment, updated);
    },
    async remove(environment, id) {
      await tokens(environment).deleteOne({ _id: id });
    },
    async claimIdempotency(environment, key, record) {
      try {
        await keys(environment).insertOne({ _id: key, ...record });
        return undefined;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      const existing = await keys(environment).findOne({ _id: key });
      if (!existing) return this.claimIdempotency(environment, key, record);
      const { _id, ...rest } = existing;
      return rest;
    },
    async replaceIdempotency(environment, key, expectedCreateTime, record) {
      const result = await keys(environment).replaceOne({ _id: key, createTime: expectedCreateTime }, record);
      return result.modifiedCount === 1;
    },
    async recordUsage(environment, lastUsed) {
      if (lastUsed.size === 0) return;
      await tokens(environment).bulkWrite(
        [...lastUsed].map(([id, at]) => ({
          updateOne: { filter: { _id: id }, update: { $max: { lastUsedTime: at } } },
        })),
        { ordered: false },
      );
    },
    async retire(environment, id, now) {
      const result = await tokens(environment).updateOne(
        { _id: id, rotateTime: { $exists: true }, graceExpireTime: { $lte: now }, retireTime: { $exists: false } },
        { $set: { retireTime: now }, $inc: { version: 1 } },
      );
      return result.modifiedCount === 1;
    },
    async dueForRetirement(environment, now) {
      const docs = await tokens(environment)
        .find({
          ...notRevoked,
          rotateTime: { $exists: true },
          graceExpireTime: { $lte: now },
          retireTime: { $exists: false },
        })
        .toArray();
      return docs.map((doc) => toDomain(environment, doc));
    },
    async markExpired(environment, now) {
      const due = await tokens(environment)
        .find({ state: "active", ...notRevoked, ...notRotated, expireTime: { $lte: now } })
        .toArray();
      if (due.length === 0) return [];
      await tokens(environment).updateMany(
        { _id: { $in: due.map((doc) => doc._id) }, state: "active" },
        { $set: { state: "expired" }, $inc: { version: 1 } },
      );
      return due.map((doc) => toDomain(environment, doc));
    },
    async purgeEnded(environment, before) {
      const result = await tokens(environment).deleteMany({
        $or: [
          { revokeTime: { $lt: before } },
          { ...notRevoked, ...notRotated, expireTime: { $lt: before } },
          { ...notRevoked, retireTime: { $exists: true }, graceExpireTime: { $lt: before } },
        ],
      });
      return result.deletedCount;
    },
    async purgeIdempotency(environment, before) {
      return (await keys(environment).deleteMany({ createTime: { $lt: before } })).deletedCount;
    },
  };
}
