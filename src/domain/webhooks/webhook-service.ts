import type { Clock } from "../clock.js";
import { seal } from "../crypto/envelope.js";
import {
  ConcurrentModificationError,
  FailedPreconditionError,
  invalidField,
  NotFoundError,
  RoomkeyError,
} from "../errors.js";
import { newId } from "../ids.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import type { DataKeySource, DeliveryFilter, WebhookDestinations, WebhookQueue, WebhookStore } from "./ports.js";
import {
  deliveryIdFor,
  deliveryJob,
  deliveryJobId,
  isWebhookEventType,
  newSigningSecret,
  pendingDelivery,
  secretBinding,
  toEndpointView,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookEndpointView,
} from "./webhooks.js";

/** The most endpoints one environment may have: each event is delivered to each, so this bounds an event's cost. */
export const maxEndpoints = 50;

export interface EndpointInput {
  url: string;
  eventTypes: string[];
  enabled: boolean;
  description: string;
}

export type EndpointChanges = Partial<EndpointInput>;

export interface WebhookServiceDeps {
  store: WebhookStore;
  queue: Pick<WebhookQueue, "deliver">;
  keys: DataKeySource;
  destinations: WebhookDestinations;
  /** Plain http:// endpoints are accepted (local development and tests). */
  allowHttp: boolean;
  /** How long a rotated-out secret keeps signing when the call does not say. */
  defaultOverlapMs: number;
  /** Attempts of a redelivery (the retry schedule's). */
  attempts: number;
  clock: Clock;
}

export type WebhookService = ReturnType<typeof createWebhookService>;

export function endpointNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "WEBHOOK_ENDPOINT_NOT_FOUND",
    `webhook endpoint "${id}" does not exist in environment "${environment}"`,
    { environment, endpoint: id },
  );
}

function eventNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "WEBHOOK_EVENT_NOT_FOUND",
    `webhook event "${id}" does not exist in environment "${environment}" (or its log was purged)`,
    { environment, event: id },
  );
}

/**
 * The webhook endpoints of each environment and their delivery log: what the
 * API does. Delivering is webhook-delivery.ts, on the environment's queue.
 */
export function createWebhookService(deps: WebhookServiceDeps) {
  const { store, keys, destinations, clock } = deps;

  async function checkUrl(url: string): Promise<void> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalidField("endpoint.url", "is not a URL");
    }
    if (parsed.protocol !== "https:" && !(deps.allowHttp && parsed.protocol === "http:")) {
      throw invalidField(
        "endpoint.url",
        deps.allowHttp ? "must be an http or https URL" : "must be an https URL (this deployment refuses http)",
      );
    }
    if (parsed.username !== "" || parsed.password !== "") {
      throw invalidField("endpoint.url", "must not carry a user name or password");
    }
    const check = await destinations.check(url);
    if (!check.allowed) throw invalidField("endpoint.url", `roomkey does not call this URL: ${check.why}`);
  }

  function checkTypes(types: readonly string[]): void {
    const unknown = types.find((t) => !isWebhookEventType(t));
    if (unknown !== undefined) throw invalidField("endpoint.event_types", `"${unknown}" is not an event type`);
  }

  async function read(environment: string, id: string): Promise<WebhookEndpoint> {
    const endpoint = await store.getEndpoint(environment, id);
    if (!endpoint) throw endpointNotFound(environment, id);
    return endpoint;
  }

  async function sealSecret(environment: string, id: string, secret: string): Promise<string> {
    return seal(await keys.dataKey(environment), secret, secretBinding(environment, id));
  }

  async function create(
    environment: string,
    input: EndpointInput,
  ): Promise<{ endpoint: WebhookEndpointView; secret: string }> {
    checkTypes(input.eventTypes);
    await checkUrl(input.url);
    if ((await store.countEndpoints(environment)) >= maxEndpoints) {
      throw new RoomkeyError(
        "resource_exhausted",
        "WEBHOOK_ENDPOINT_LIMIT",
        `environment "${environment}" has ${maxEndpoints} webhook endpoints, the most it may have; delete one first`,
        { environment, limit: String(maxEndpoints) },
      );
    }
    const now = clock.now();
    const id = newId("we", now);
    const secret = newSigningSecret();
    const endpoint: WebhookEndpoint = {
      id,
      url: input.url,
      eventTypes: [...input.eventTypes],
      enabled: input.enabled,
      description: input.description,
      disabledReason: "",
      sealedSecret: await sealSecret(environment, id, secret),
      createTime: now,
      updateTime: now,
      version: 1,
    };
    await store.insertEndpoint(environment, endpoint);
    return { endpoint: toEndpointView(endpoint), secret };
  }

  async function get(environment: string, id: string): Promise<WebhookEndpointView> {
    return toEndpointView(await read(environment, id));
  }

  async function list(environment: string, page: PageRequest): Promise<Page<WebhookEndpointView>> {
    const items = await store.listEndpoints(environment, page);
    const result = toPage(items, page.size, (e) => e.id);
    return { items: result.items.map(toEndpointView), nextAfter: result.nextAfter };
  }

  /** Applies `make` to the endpoint as it is now, re-reading when another writer got there first. */
  async function change(
    environment: string,
    id: string,
    make: (endpoint: WebhookEndpoint) => { changes: Partial<WebhookEndpoint>; unset?: (keyof WebhookEndpoint)[] },
  ): Promise<WebhookEndpoint> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const endpoint = await read(environment, id);
      const { changes, unset = [] } = make(endpoint);
      const next = { ...changes, updateTime: clock.now() };
      if (await store.updateEndpoint(environment, endpoint, next, unset)) {
        const after: WebhookEndpoint = { ...endpoint, ...next, version: endpoint.version + 1 };
        for (const field of unset) delete after[field];
        return after;
      }
    }
    throw new ConcurrentModificationError(`webhook endpoint "${id}"`);
  }

  async function update(environment: string, id: string, changes: EndpointChanges): Promise<WebhookEndpointView> {
    if (changes.eventTypes) checkTypes(changes.eventTypes);
    if (changes.url !== undefined) await checkUrl(changes.url);
    const after = await change(environment, id, (endpoint) => {
      const reenabled = changes.enabled === true && !endpoint.enabled;
      // Another URL is another receiver: the old one's failing record does not count against it.
      const moved = changes.url !== undefined && changes.url !== endpoint.url;
      return {
        changes: {
          ...(changes.url === undefined ? {} : { url: changes.url }),
          ...(changes.eventTypes === undefined ? {} : { eventTypes: [...changes.eventTypes] }),
          ...(changes.description === undefined ? {} : { description: changes.description }),
          ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }),
          // Enabled again (by a caller): its failing record starts over.
          ...(reenabled ? { disabledReason: "" } : {}),
        },
        unset: reenabled || moved ? ["failingSince"] : [],
      };
    });
    return toEndpointView(after);
  }

  async function remove(environment: string, id: string): Promise<void> {
    if (!(await store.removeEndpoint(environment, id))) throw endpointNotFound(environment, id);
    // Their jobs find the endpoint gone and end at once; this makes the log say so now.
    await store.failPending(environment, id, "the endpoint was deleted", clock.now());
  }

  /** A new secret, returned once; the old one keeps signing for `overlapMs` (default: the deployment's). */
  async function rotateSecret(
    environment: string,
    id: string,
    overlapMs: number = deps.defaultOverlapMs,
  ): Promise<{ endpoint: WebhookEndpointView; secret: string }> {
    const secret = newSigningSecret();
    const sealed = await sealSecret(environment, id, secret);
    const now = clock.now();
    const after = await change(environment, id, (endpoint) =>
      overlapMs > 0
        ? {
            changes: {
              sealedSecret: sealed,
              sealedPreviousSecret: endpoint.sealedSecret,
              previousSecretExpireTime: new Date(now.getTime() + overlapMs),
              secretRotateTime: now,
            },
          }
        : {
            changes: { sealedSecret: sealed, secretRotateTime: now },
            unset: ["sealedPreviousSecret", "previousSecretExpireTime"],
          },
    );
    return { endpoint: toEndpointView(after), secret };
  }

  async function listDeliveries(
    environment: string,
    filter: DeliveryFilter,
    page: PageRequest,
  ): Promise<Page<WebhookDelivery>> {
    if ((filter.endpointId === undefined) === (filter.eventId === undefined)) {
      throw invalidField("endpoint_id", "exactly one of endpoint_id and event_id must be set");
    }
    const items = await store.listDeliveries(environment, filter, page);
    return toPage(items, page.size, (d) => d.id);
  }

  /** Delivers an event again, same id, to one endpoint or every enabled endpoint it went to. */
  async function redeliver(environment: string, eventId: string, endpointId?: string): Promise<WebhookDelivery[]> {
    const event = await store.getEvent(environment, eventId);
    if (!event) throw eventNotFound(environment, eventId);
    let targets: WebhookEndpoint[];
    if (endpointId !== undefined) {
      const endpoint = await read(environment, endpointId);
      if (!endpoint.enabled) {
        throw new FailedPreconditionError(
          "failed_precondition",
          "WEBHOOK_ENDPOINT_DISABLED",
          `webhook endpoint "${endpointId}" is disabled; enable it first`,
          { endpoint: endpointId },
        );
      }
      targets = [endpoint];
    } else {
      const went = new Set(
        (await store.listDeliveries(environment, { eventId }, { after: undefined, size: 1_000 })).map(
          (d) => d.endpointId,
        ),
      );
      targets = (await store.allEndpoints(environment)).filter((e) => e.enabled && went.has(e.id));
    }
    const now = clock.now();
    const restarted: WebhookDelivery[] = [];
    for (const endpoint of targets) {
      const id = deliveryIdFor(event.id, endpoint.id);
      const existing = await store.getDelivery(environment, id);
      if (existing?.status === "pending") {
        // Its job is still on it (or waiting for its next attempt): a second one would send it twice.
        if (endpointId !== undefined) {
          throw new FailedPreconditionError(
            "failed_precondition",
            "WEBHOOK_DELIVERY_PENDING",
            `event "${eventId}" is still being delivered to webhook endpoint "${endpoint.id}"` +
              (existing.nextAttemptTime
                ? `; its next attempt is due at ${existing.nextAttemptTime.toISOString()}`
                : ""),
            { event: eventId, endpoint: endpoint.id },
          );
        }
        continue;
      }
      if (existing) {
        const again = await store.restartDelivery(
          environment,
          existing,
          deliveryJobId(id, existing.redeliveries + 1),
          now,
        );
        if (again) restarted.push(again);
        continue;
      }
      // Named by the caller although the event did not go to it (created later, or not subscribed then).
      const delivery = pendingDelivery(event, endpoint.id, now, 1);
      await store.insertDeliveries(environment, [delivery]);
      restarted.push(delivery);
    }
    if (restarted.length > 0) {
      await deps.queue.deliver(
        environment,
        restarted.map((d) => deliveryJob(d, deps.attempts)),
      );
    }
    return restarted;
  }

  return { create, get, list, update, remove, rotateSecret, listDeliveries, redeliver };
}
