import type { Collection, Filter } from "mongodb";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import { ConcurrentModificationError } from "../domain/errors.js";
import type { PageRequest } from "../domain/paging.js";
import type {
  ExpiringTokenSource,
  IdempotencyRecord,
  TokenHashSource,
  TokenLookup,
  TokenMaintenanceStore,
  TokenStore,
  UsageWriter,
} from "../domain/tokens/ports.js";
import type { Token, TokenState } from "../domain/tokens/tokens.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";
import { compareAndSet } from "./versioned.js";

type TokenDocument = Omit<Token, "id" | "environment"> & { _id: string };
type IdempotencyDocument = IdempotencyRecord & { _id: string; version: number };

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

/**
 * Last-used times, apart from the tokens: written in batches while tokens
 * change, and FerretDB rewrites whole documents, so sharing one would lose writes.
 */
export const tokenUsageCollection: CollectionSpec = { name: "token_usage", indexes: [] };

type UsageDocument = { _id: string; lastUsedTime: Date };

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

export type TokenRepository = TokenStore &
  TokenLookup &
  TokenHashSource &
  UsageWriter &
  TokenMaintenanceStore &
  ExpiringTokenSource;

const maxAttempts = 5;

/**
 * Updates sent in one `update` command. FerretDB 1.24 (PostgreSQL) holds a
 * pooled connection for each update of a command that matched a document
 * until the whole command ends (msg_update.go closes each update's query in
 * a `defer` inside its loop), and its pool has 50: measured, one bulk write
 * of 1,000 last-used times for existing usage documents took every
 * connection and hung that FerretDB for good. Small commands keep a flush,
 * even from several replicas at once, far from that limit, at a cost MongoDB
 * does not notice (one round trip per 16 tokens used in a flush interval).
 */
const usageWritesPerCommand = 16;

/** API tokens and idempotency keys, in each environment's own database. */
export function createTokenRepository(databases: Pick<EnvironmentDatabases, "db">): TokenRepository {
  const tokens = (environment: string): Collection<TokenDocument> =>
    databases.db(parseEnvironmentName(environment, "environment")).collection<TokenDocument>(tokensCollection.name);
  const keys = (environment: string): Collection<IdempotencyDocument> =>
    databases
      .db(parseEnvironmentName(environment, "environment"))
      .collection<IdempotencyDocument>(idempotencyCollection.name);
  const usage = (environment: string): Collection<UsageDocument> =>
    databases.db(parseEnvironmentName(environment, "environment")).collection<UsageDocument>(tokenUsageCollection.name);

  /**
   * Tokens with their last-used times, read from their own collection. One
   * token is looked up by equality: FerretDB 1.24 hands only equality filters
   * to PostgreSQL and answers `$in` by reading the whole collection (measured:
   * GetToken fell from hundreds to 41 calls a second with 1,000 tokens used).
   */
  async function withUsage(environment: string, docs: TokenDocument[]): Promise<Token[]> {
    if (docs.length === 0) return [];
    const ids = docs.map((doc) => doc._id);
    const uses = await usage(environment)
      .find(ids.length === 1 ? { _id: ids[0] as string } : { _id: { $in: ids } })
      .toArray();
    const lastUsed = new Map(uses.map((u) => [u._id, u.lastUsedTime]));
    return docs.map((doc) => {
      const token = toDomain(environment, doc);
      const at = lastUsed.get(doc._id);
      if (at) token.lastUsedTime = at;
      return token;
    });
  }

  async function readOne(environment: string, id: string): Promise<Token | undefined> {
    const doc = await tokens(environment).findOne({ _id: id });
    return doc ? (await withUsage(environment, [doc]))[0] : undefined;
  }

  /** A version-checked change of one token (see compareAndSet): the token afterwards, or undefined if it lost. */
  async function change(environment: string, token: Token, set: Partial<TokenDocument>): Promise<Token | undefined> {
    // Token ids are never reused: the id is its own incarnation.
    const target = { id: token.id, incarnation: "" };
    const won = await compareAndSet(
      databases.db(parseEnvironmentName(environment, "environment")),
      tokensCollection.name,
      target,
      token.version,
      set,
    );
    return won ? { ...token, ...set, version: token.version + 1 } : undefined;
  }

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
    get: readOne,
    async findByHash(environment, hash) {
      const doc = await tokens(environment).findOne({ hash });
      return doc ? toDomain(environment, doc) : undefined;
    },
    async listHashes(environment) {
      // One round trip per environment and refresh; only the hashes come back.
      const docs = await tokens(environment)
        .find({}, { projection: { _id: 0, hash: 1 } })
        .toArray();
      return docs.map((doc) => doc.hash);
    },
    async list(environment, filter, page: PageRequest) {
      const query: Filter<TokenDocument> = filter.state ? stateFilter(filter.state, filter.now) : {};
      if (page.after !== undefined) query._id = { $lt: page.after };
      const docs = await tokens(environment)
        .find(query)
        .sort({ _id: -1 })
        .limit(page.size + 1)
        .toArray();
      return withUsage(environment, docs);
    },
    async listActiveExpiringBefore(environment, before, now, limit) {
      const docs = await tokens(environment)
        .find({ ...stateFilter("active", now), expireTime: { $gt: now, $lte: before } })
        .sort({ expireTime: 1 })
        .limit(limit)
        .toArray();
      return docs.map((doc) => toDomain(environment, doc));
    },
    async revoke(environment, id, at) {
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        const token = await readOne(environment, id);
        if (!token || token.revokeTime) return token;
        const revoked = await change(environment, token, { revokeTime: at, state: "revoked" });
        if (revoked) return revoked;
      }
      throw new ConcurrentModificationError(`token "${id}"`);
    },
    async markRotated(environment, id, expectedVersion, rotation) {
      const token = await readOne(environment, id);
      if (!token || token.version !== expectedVersion || token.revokeTime || token.rotateTime) return undefined;
      return change(environment, token, { ...rotation, state: "rotated" });
    },
    async remove(environment, id) {
      await tokens(environment).deleteOne({ _id: id });
    },
    async claimIdempotency(environment, key, record) {
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        try {
          await keys(environment).insertOne({ _id: key, ...record, version: 1 });
          return undefined;
        } catch (error) {
          if (!isDuplicateKey(error)) throw error;
        }
        const existing = await keys(environment).findOne({ _id: key });
        if (existing)
          return { tokenId: existing.tokenId, fingerprint: existing.fingerprint, createTime: existing.createTime };
      }
      throw new ConcurrentModificationError(`idempotency key "${key}"`);
    },
    async replaceIdempotency(environment, key, expectedCreateTime, record) {
      const existing = await keys(environment).findOne({ _id: key });
      if (!existing || existing.createTime.getTime() !== expectedCreateTime.getTime()) return false;
      const target = { id: key, incarnation: String(existing.createTime.getTime()) };
      return compareAndSet(
        databases.db(parseEnvironmentName(environment, "environment")),
        idempotencyCollection.name,
        target,
        existing.version,
        {
          ...record,
        },
      );
    },
    async recordUsage(environment, lastUsed) {
      const updates = [...lastUsed].map(([id, at]) => ({
        updateOne: { filter: { _id: id }, update: { $max: { lastUsedTime: at } }, upsert: true },
      }));
      // A few updates per command, one command at a time: see usageWritesPerCommand.
      for (let start = 0; start < updates.length; start += usageWritesPerCommand) {
        try {
          await usage(environment).bulkWrite(updates.slice(start, start + usageWritesPerCommand), { ordered: false });
        } catch (error) {
          // Another replica inserted the same token's first use at once: its time is as good.
          if (!isDuplicateKey(error)) throw error;
        }
      }
    },
    async retire(environment, id, now) {
      const token = await readOne(environment, id);
      const due = token?.rotateTime && token.graceExpireTime && token.graceExpireTime <= now && !token.retireTime;
      return (
        token !== undefined && Boolean(due) && (await change(environment, token, { retireTime: now })) !== undefined
      );
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
      const marked: Token[] = [];
      for (const doc of due) {
        const expired = await change(environment, toDomain(environment, doc), { state: "expired" });
        if (expired) marked.push(expired);
      }
      return marked;
    },
    async purgeEnded(environment, before) {
      const ended = await tokens(environment)
        .find(
          {
            $or: [
              { revokeTime: { $lt: before } },
              { ...notRevoked, ...notRotated, expireTime: { $lt: before } },
              { ...notRevoked, retireTime: { $exists: true }, graceExpireTime: { $lt: before } },
            ],
          },
          { projection: { _id: 1 } },
        )
        .toArray();
      if (ended.length === 0) return 0;
      const ids = ended.map((doc) => doc._id);
      const result = await tokens(environment).deleteMany({ _id: { $in: ids } });
      await usage(environment).deleteMany({ _id: { $in: ids } });
      // An idempotency key goes with its token: a repeat after the purge is a new request, never the old id again.
      await keys(environment).deleteMany({ tokenId: { $in: ids } });
      return result.deletedCount;
    },
    async purgeIdempotency(environment, before) {
      return (await keys(environment).deleteMany({ createTime: { $lt: before } })).deletedCount;
    },
  };
}
