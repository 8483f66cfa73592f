import type { Collection, Filter } from "mongodb";
import type { AuditEntry } from "../domain/audit/audit.js";
import { auditIdFloor } from "../domain/audit/audit.js";
import type { AuditStore } from "../domain/audit/ports.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";

type AuditDocument = Omit<AuditEntry, "id"> & { _id: string };

/**
 * The audit log, newest first by `_id` (ids begin with their time, so a time
 * range is an `_id` range); one index per filter, each ending in `_id` so a
 * filtered page is read in order. No TTL index: retention is a sweep.
 */
export const auditEventsCollection: CollectionSpec = {
  name: "audit_events",
  indexes: [
    { key: { actorId: 1, _id: -1 }, name: "actor" },
    { key: { resource: 1, _id: -1 }, name: "resource" },
    { key: { method: 1, _id: -1 }, name: "method" },
  ],
};

function toDocument({ id, ...rest }: AuditEntry): AuditDocument {
  return { _id: id, ...rest };
}

function fromDocument({ _id, ...rest }: AuditDocument): AuditEntry {
  return { id: _id, ...rest, details: { ...rest.details } };
}

/** Each environment's audit log, in its own database. */
export function createAuditRepository(databases: Pick<EnvironmentDatabases, "db">): AuditStore {
  const events = (environment: string): Collection<AuditDocument> =>
    databases
      .db(parseEnvironmentName(environment, "environment"))
      .collection<AuditDocument>(auditEventsCollection.name);

  return {
    async insertMany(environment, entries) {
      if (entries.length === 0) return;
      try {
        await events(environment).insertMany(entries.map(toDocument), { ordered: false });
      } catch (error) {
        // A retried batch of which some entries were written before: the others were written now.
        if (!isDuplicateKey(error)) throw error;
      }
    },
    async list(environment, filter, before, limit) {
      const query: Filter<AuditDocument> = {};
      const id: { $gte?: string; $lt?: string } = {};
      if (filter.startTime) id.$gte = auditIdFloor(filter.startTime);
      if (filter.endTime) id.$lt = auditIdFloor(filter.endTime);
      if (before !== undefined && (id.$lt === undefined || before < id.$lt)) id.$lt = before;
      if (id.$gte !== undefined || id.$lt !== undefined) query._id = id;
      if (filter.actorId !== undefined) query.actorId = filter.actorId;
      if (filter.resource !== undefined) query.resource = filter.resource;
      if (filter.method !== undefined) query.method = filter.method;
      const docs = await events(environment).find(query).sort({ _id: -1 }).limit(limit).toArray();
      return docs.map(fromDocument);
    },
    async deleteOldest(environment, below, limit) {
      const oldest = await events(environment)
        .find({ _id: { $lt: below } }, { projection: { _id: 1 } })
        .sort({ _id: 1 })
        .limit(limit)
        .toArray();
      const first = oldest[0];
      const last = oldest[oldest.length - 1];
      if (!first || !last) return 0;
      // The ids found span a range below `below`: deleting the range deletes them (and none newer).
      const result = await events(environment).deleteMany({ _id: { $gte: first._id, $lte: last._id } });
      return result.deletedCount;
    },
  };
}
