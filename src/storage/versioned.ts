import type { Db, Document } from "mongodb";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";

/**
 * Claims of version transitions: `<collection>/<id>@<incarnation>/<version>`,
 * one per transition, with the change that makes it. Purged after a day by
 * the workers (see `purgeTransitions`), and at once by their writer when the
 * document they were for does not exist.
 */
export const transitionsCollection: CollectionSpec = { name: "transitions", indexes: [] };

/** How long a claim is kept: long after any writer that read the version it moved can still be writing. */
export const claimRetentionMs = 86_400_000;

/**
 * The document to change. `incarnation` tells apart documents that reuse an id
 * after a delete (an environment or integration created again): its creation
 * time serves.
 */
export interface VersionedTarget {
  id: string;
  incarnation: string;
}

interface Versioned {
  _id: string;
  version: number;
}

export interface TransitionClaim {
  _id: string;
  set: Document;
  unset: string[];
  at: Date;
  /** The environment incarnation its writer was bound to (see WriteGuard); absent for unbound writers. */
  environmentIncarnation?: string;
  /** Further conditions the document must meet for the change to land (see `compareAndSet`'s `match`). */
  match?: FieldCondition[];
}

/** A field (a dotted path) that must hold exactly this value. Kept as a pair: FerretDB refuses dotted keys in documents. */
export interface FieldCondition {
  path: string;
  value: unknown;
}

/**
 * Binds a write to one incarnation of its environment: a job made for an
 * environment that was deleted and created again under its name must not
 * write into the new one's database.
 */
export interface WriteGuard {
  /** Stored with the claim, so that the sweep removes claims of an incarnation that is gone at once. */
  incarnation: string;
  /** Throws when the writer may no longer write (its incarnation is not the environment's current one). */
  check(): Promise<void>;
}

/**
 * A claim older than this whose change is not in its document was left by a
 * crash: anyone finishes it. Generous, so that a slow writer or clocks apart
 * between replicas (the claim's time is its writer's) do not look like one.
 */
export const abandonedAfterMs = 60_000;

/**
 * Moves a document from `expectedVersion` to the next with `set`, or reports
 * that someone else moved it first. Correct on MongoDB and on FerretDB alike.
 * With `match`, the change lands only on a document that also meets those
 * conditions (an environment record of one incarnation, still holding the
 * value the change replaces): the version alone is no proof when the
 * document may have been deleted and made again meanwhile.
 *
 * FerretDB 1.24 applies an update as read, change in Go, write back, with no
 * lock in between: two updates filtered on the same version both match and
 * both write (measured: 20 of 20 rounds of four concurrent findOneAndUpdate
 * calls had several winners). A unique `_id` on insert is atomic on both, so
 * the winner is whoever inserts the claim for this transition. The claim
 * carries the change, so a transition whose winner stopped before writing it
 * is finished by the next writer that finds it.
 *
 * Every write to a versioned document must come through here: FerretDB
 * rewrites whole documents, so any other concurrent write may be lost.
 *
 * With a `guard`, nothing is written unless the guard holds first. There is
 * no transaction around the check and the writes, so the environment may
 * still be replaced in between; then the claim may land in the new
 * database, but the change cannot (the new database has no document of that
 * id, for ids that are never reused, or only one of another incarnation) and
 * the claim is removed at once by `finishClaim`; the sweep removes one whose
 * writer died in between.
 */
export async function compareAndSet(
  db: Db,
  collection: string,
  target: VersionedTarget,
  expectedVersion: number,
  set: Document,
  unset: readonly string[] = [],
  options: { abandonedAfterMs?: number; guard?: WriteGuard; match?: readonly FieldCondition[] } = {},
): Promise<boolean> {
  const { id } = target;
  const { guard } = options;
  await guard?.check();
  const claims = db.collection<TransitionClaim>(transitionsCollection.name);
  const claimId = `${collection}/${id}@${target.incarnation}/${expectedVersion}`;
  const claim: TransitionClaim = {
    _id: claimId,
    set: { ...set, version: expectedVersion + 1 },
    unset: [...unset],
    at: new Date(),
    ...(guard ? { environmentIncarnation: guard.incarnation } : {}),
    ...(options.match ? { match: [...options.match] } : {}),
  };
  try {
    await claims.insertOne(claim);
  } catch (error) {
    if (!isDuplicateKey(error)) throw error;
    const existing = await claims.findOne({ _id: claimId });
    const threshold = options.abandonedAfterMs ?? abandonedAfterMs;
    if (existing && Date.now() - existing.at.getTime() > threshold) await apply(db, collection, id, existing);
    return false;
  }
  return finishClaim(db, collection, id, claim);
}

/**
 * The winner's half: writes its claimed change. If the write matches nothing
 * because another writer already finished this claim for it (it looked
 * abandoned), the transition is still the winner's: only its claim can move
 * this version. If the document does not exist (deleted meanwhile, or the
 * database is another incarnation's), the claim protects nothing and would
 * only be litter: its writer removes it.
 */
export async function finishClaim(db: Db, collection: string, id: string, claim: TransitionClaim): Promise<boolean> {
  if (await apply(db, collection, id, claim)) return true;
  const now = await db.collection<Versioned>(collection).findOne({ _id: id }, { projection: { version: 1 } });
  if (now === null) {
    await db.collection<TransitionClaim>(transitionsCollection.name).deleteOne({ _id: claim._id, at: claim.at });
    return false;
  }
  return now.version >= Number(claim.set.version);
}

async function apply(db: Db, collection: string, id: string, claim: TransitionClaim): Promise<boolean> {
  const update: Document = { $set: claim.set };
  if (claim.unset.length > 0) update.$unset = Object.fromEntries(claim.unset.map((field) => [field, ""]));
  const expectedVersion = Number(claim.set.version) - 1;
  const filter: Document = Object.fromEntries((claim.match ?? []).map(({ path, value }) => [path, value]));
  const result = await db
    .collection<Versioned>(collection)
    .updateOne({ ...filter, _id: id, version: expectedVersion }, update);
  return result.matchedCount === 1;
}

/**
 * Removes transition claims older than `before` (they only matter for
 * seconds) and, given the incarnation the purge runs for, every claim a
 * writer bound to an earlier incarnation left (one that died between its
 * claim and its clean-up). Only earlier ones: a purge of an incarnation that
 * was replaced while it ran must not remove its successor's live claims.
 * Incarnations are creation times in milliseconds, 13 digits until the year
 * 2286, so they compare as strings. One command: FerretDB scans the
 * collection either way.
 */
export async function purgeTransitions(db: Db, before: Date, currentIncarnation?: string): Promise<number> {
  const old = { at: { $lt: before } };
  const filter =
    currentIncarnation === undefined
      ? old
      : { $or: [old, { environmentIncarnation: { $exists: true, $lt: currentIncarnation } }] };
  return (await db.collection<TransitionClaim>(transitionsCollection.name).deleteMany(filter)).deletedCount;
}
