import type { Collection, Filter } from "mongodb";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import type { DeliveryFilter, WebhookStore } from "../domain/webhooks/ports.js";
import type { WebhookDelivery, WebhookEndpoint, WebhookEventRecord } from "../domain/webhooks/webhooks.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";
import { compareAndSet } from "./versioned.js";

type EndpointDocument = Omit<WebhookEndpoint, "id"> & { _id: string };
type EventDocument = Omit<WebhookEventRecord, "id"> & { _id: string };
type DeliveryDocument = Omit<WebhookDelivery, "id"> & { _id: string };
type NoticeDocument = { _id: string; at: Date };

export const webhookEndpointsCollection: CollectionSpec = { name: "webhook_endpoints", indexes: [] };

/** Events, each with its rendered body, read by id; the purge (a range) runs at most hourly. */
export const webhookEventsCollection: CollectionSpec = {
  name: "webhook_events",
  indexes: [{ key: { createTime: 1 }, name: "create_time" }],
};

/** One document per event and endpoint, updated by each attempt. */
export const webhookDeliveriesCollection: CollectionSpec = {
  name: "webhook_deliveries",
  indexes: [
    { key: { endpointId: 1, _id: -1 }, name: "endpoint" },
    { key: { eventId: 1, _id: -1 }, name: "event" },
    { key: { status: 1, nextAttemptTime: 1 }, name: "status_next_attempt" },
    { key: { createTime: 1 }, name: "create_time" },
  ],
};

/** Notices sent once per token (token.expiring), by `<type>/<token id>`. */
export const webhookNoticesCollection: CollectionSpec = { name: "webhook_notices", indexes: [] };

export const webhookCollections = [
  webhookEndpointsCollection,
  webhookEventsCollection,
  webhookDeliveriesCollection,
  webhookNoticesCollection,
];

function fromDocument<T extends { _id: string }>({ _id, ...rest }: T): Omit<T, "_id"> & { id: string } {
  return { id: _id, ...rest };
}

function toDocument<T extends { id: string }>({ id, ...rest }: T): Omit<T, "id"> & { _id: string } {
  return { _id: id, ...rest };
}

/** Endpoints, events and the delivery log, in each environment's own database. */
export function createWebhookRepository(databases: Pick<EnvironmentDatabases, "db">) {
  const db = (environment: string) => databases.db(parseEnvironmentName(environment, "environment"));
  const endpoints = (environment: string): Collection<EndpointDocument> =>
    db(environment).collection<EndpointDocument>(webhookEndpointsCollection.name);
  const events = (environment: string): Collection<EventDocument> =>
    db(environment).collection<EventDocument>(webhookEventsCollection.name);
  const deliveries = (environment: string): Collection<DeliveryDocument> =>
    db(environment).collection<DeliveryDocument>(webhookDeliveriesCollection.name);
  const notices = (environment: string): Collection<NoticeDocument> =>
    db(environment).collection<NoticeDocument>(webhookNoticesCollection.name);

  const store: WebhookStore = {
    async insertEndpoint(environment, endpoint) {
      await endpoints(environment).insertOne(toDocument(endpoint));
    },
    async getEndpoint(environment, id) {
      const doc = await endpoints(environment).findOne({ _id: id });
      return doc ? fromDocument(doc) : undefined;
    },
    async listEndpoints(environment, page) {
      const filter = page.after === undefined ? {} : { _id: { $gt: page.after } };
      const docs = await endpoints(environment)
        .find(filter)
        .sort({ _id: 1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map(fromDocument);
    },
    async allEndpoints(environment) {
      return (await endpoints(environment).find({}).toArray()).map(fromDocument);
    },
    countEndpoints: (environment) => endpoints(environment).countDocuments({}),
    updateEndpoint(environment, endpoint, changes, unset = []) {
      const { id: _id, version: _v, ...set } = changes;
      // Endpoint ids are never reused: the id with its creation time is its own incarnation.
      const target = { id: endpoint.id, incarnation: String(endpoint.createTime.getTime()) };
      return compareAndSet(db(environment), webhookEndpointsCollection.name, target, endpoint.version, set, unset);
    },
    async removeEndpoint(environment, id) {
      return (await endpoints(environment).deleteOne({ _id: id })).deletedCount === 1;
    },

    async insertEvent(environment, event) {
      try {
        await events(environment).insertOne(toDocument(event));
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    },
    async getEvent(environment, id) {
      const doc = await events(environment).findOne({ _id: id });
      return doc ? fromDocument(doc) : undefined;
    },

    async insertDeliveries(environment, list) {
      if (list.length === 0) return;
      try {
        await deliveries(environment).insertMany(list.map(toDocument), { ordered: false });
      } catch (error) {
        // Some existed already (an event raised again): the others were written.
        if (!isDuplicateKey(error)) throw error;
      }
    },
    async getDelivery(environment, id) {
      const doc = await deliveries(environment).findOne({ _id: id });
      return doc ? fromDocument(doc) : undefined;
    },
    async recordAttempt(environment, id, jobId, attempt) {
      // Only the job that carries the delivery writes it: a job it was taken from (a redelivery, a
      // re-queue) finds jobId changed and writes nothing.
      const result = await deliveries(environment).updateOne(
        { _id: id, jobId },
        {
          $set: {
            status: attempt.status,
            lastResponseCode: attempt.responseCode,
            lastError: attempt.error,
            lastLatencyMs: attempt.latencyMs,
            lastAttemptTime: attempt.time,
            ...(attempt.nextAttemptTime ? { nextAttemptTime: attempt.nextAttemptTime } : {}),
          },
          $inc: { attempts: 1 },
          ...(attempt.nextAttemptTime ? {} : { $unset: { nextAttemptTime: "" } }),
        },
      );
      return result.matchedCount === 1;
    },
    async endDelivery(environment, id, reason, now) {
      await deliveries(environment).updateOne(
        { _id: id, status: "pending" },
        { $set: { status: "failed", lastError: reason, lastAttemptTime: now }, $unset: { nextAttemptTime: "" } },
      );
    },
    async restartDelivery(environment, delivery, jobId, now) {
      // From the state it was read in: of two redeliveries at once, one restarts it.
      const doc = await deliveries(environment).findOneAndUpdate(
        { _id: delivery.id, jobId: delivery.jobId, status: delivery.status },
        {
          $set: { status: "pending", jobId, nextAttemptTime: now, roundStartAttempts: delivery.attempts },
          $inc: { redeliveries: 1 },
        },
        { returnDocument: "after" },
      );
      return doc ? fromDocument(doc) : undefined;
    },
    async listDeliveries(environment, filter: DeliveryFilter, page) {
      const query: Filter<DeliveryDocument> = {};
      if (filter.endpointId !== undefined) query.endpointId = filter.endpointId;
      if (filter.eventId !== undefined) query.eventId = filter.eventId;
      if (filter.status !== undefined) query.status = filter.status;
      if (page.after !== undefined) query._id = { $lt: page.after };
      const docs = await deliveries(environment)
        .find(query)
        .sort({ _id: -1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map(fromDocument);
    },
    async listOverdue(environment, before, limit) {
      // Soonest due first, so that none waits behind others however many are pending.
      const docs = await deliveries(environment)
        .find({ status: "pending", nextAttemptTime: { $lt: before } })
        .sort({ nextAttemptTime: 1 })
        .limit(limit)
        .toArray();
      return docs.map(fromDocument);
    },
    async failPending(environment, endpointId, reason, now) {
      const result = await deliveries(environment).updateMany(
        { endpointId, status: "pending" },
        { $set: { status: "failed", lastError: reason, lastAttemptTime: now }, $unset: { nextAttemptTime: "" } },
      );
      return result.modifiedCount;
    },
    async purge(environment, before, noticesBefore) {
      const [e, d] = await Promise.all([
        events(environment).deleteMany({ createTime: { $lt: before } }),
        deliveries(environment).deleteMany({ createTime: { $lt: before } }),
      ]);
      await notices(environment).deleteMany({ at: { $lt: noticesBefore } });
      return { events: e.deletedCount, deliveries: d.deletedCount };
    },
  };

  /** Which of `ids` were announced for `kind` already. */
  async function announced(environment: string, kind: string, ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const keys = ids.map((id) => `${kind}/${id}`);
    const docs = await notices(environment)
      .find(keys.length === 1 ? { _id: keys[0] as string } : { _id: { $in: keys } })
      .toArray();
    return new Set(docs.map((d) => d._id.slice(kind.length + 1)));
  }

  async function announce(environment: string, kind: string, id: string, at: Date): Promise<void> {
    try {
      await notices(environment).insertOne({ _id: `${kind}/${id}`, at });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
  }

  return { ...store, announced, announce };
}

export type WebhookRepository = ReturnType<typeof createWebhookRepository>;
