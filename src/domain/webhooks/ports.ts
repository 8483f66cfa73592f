/**
 * What the webhooks area needs from storage, queues and the outbound guard.
 * Storage and queue modules implement these and import nothing else of the
 * domain.
 */
import type { PageRequest } from "../paging.js";
import type { Token } from "../tokens/tokens.js";
import type { DeliveryJob, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEventRecord } from "./webhooks.js";

export interface DeliveryFilter {
  endpointId?: string;
  eventId?: string;
  status?: DeliveryStatus;
}

/** What an attempt changes of its delivery. */
export interface AttemptRecord {
  status: DeliveryStatus;
  responseCode: number;
  error: string;
  latencyMs: number;
  time: Date;
  nextAttemptTime?: Date;
}

/** Persistence of one environment's endpoints, events and delivery log. */
export interface WebhookStore {
  insertEndpoint(environment: string, endpoint: WebhookEndpoint): Promise<void>;
  getEndpoint(environment: string, id: string): Promise<WebhookEndpoint | undefined>;
  /** Up to `page.size + 1` endpoints, oldest first, after `page.after`. */
  listEndpoints(environment: string, page: PageRequest): Promise<WebhookEndpoint[]>;
  /** Every endpoint (an environment has at most `maxEndpoints`). */
  allEndpoints(environment: string): Promise<WebhookEndpoint[]>;
  countEndpoints(environment: string): Promise<number>;
  /** Writes `changes` over `endpoint` if it is still at its version: false when another writer came first. */
  updateEndpoint(
    environment: string,
    endpoint: WebhookEndpoint,
    changes: Partial<WebhookEndpoint>,
    unset?: readonly (keyof WebhookEndpoint)[],
  ): Promise<boolean>;
  removeEndpoint(environment: string, id: string): Promise<boolean>;

  /** False when an event with this id exists already (raised twice). */
  insertEvent(environment: string, event: WebhookEventRecord): Promise<boolean>;
  getEvent(environment: string, id: string): Promise<WebhookEventRecord | undefined>;

  /** Inserts the deliveries that do not exist yet (by id). */
  insertDeliveries(environment: string, deliveries: readonly WebhookDelivery[]): Promise<void>;
  getDelivery(environment: string, id: string): Promise<WebhookDelivery | undefined>;
  /** Writes an attempt down, if the delivery is still carried by job `jobId`: false when it is not. */
  recordAttempt(environment: string, id: string, jobId: string, attempt: AttemptRecord): Promise<boolean>;
  /** Ends one pending delivery as failed, with `reason` (its event is gone). */
  endDelivery(environment: string, id: string, reason: string, now: Date): Promise<void>;
  /**
   * Makes a delivery pending again under a new job (a redelivery), if it is
   * still as read: the delivery afterwards, or undefined when it changed.
   */
  restartDelivery(
    environment: string,
    delivery: WebhookDelivery,
    jobId: string,
    now: Date,
  ): Promise<WebhookDelivery | undefined>;
  /** Up to `page.size + 1` deliveries, newest first, after `page.after`. */
  listDeliveries(environment: string, filter: DeliveryFilter, page: PageRequest): Promise<WebhookDelivery[]>;
  /** Pending deliveries whose next attempt was due before `before` (their job may be lost). */
  listOverdue(environment: string, before: Date, limit: number): Promise<WebhookDelivery[]>;
  /** Ends an endpoint's pending deliveries as failed, with `reason`. */
  failPending(environment: string, endpointId: string, reason: string, now: Date): Promise<number>;
  /** Removes events and deliveries created before `before`, and once-only notices made before `noticesBefore`. */
  purge(environment: string, before: Date, noticesBefore: Date): Promise<{ events: number; deliveries: number }>;
}

/** Tokens that near their expiry and were not announced yet (token.expiring is sent once). */
export interface ExpiringTokens {
  listExpiringUnannounced(environment: string, before: Date, limit: number): Promise<Token[]>;
  markExpiringAnnounced(environment: string, id: string, at: Date): Promise<void>;
}

/** The environment's webhook queue. */
export interface WebhookQueue {
  /** Queues deliveries (a job id already queued absorbs its duplicate). */
  deliver(environment: string, jobs: readonly DeliveryJob[]): Promise<void>;
  /**
   * Queues again deliveries that MongoDB says are overdue: a job still
   * waiting, delayed or running absorbs its copy, but a job Redis kept only
   * in part (its hash without its place in any list, after a partial loss)
   * would absorb it forever, so it is removed first. Resolves how many were
   * queued.
   */
  requeue(environment: string, jobs: readonly DeliveryJob[]): Promise<number>;
}

/** What one POST to an endpoint came to. */
export type SendOutcome =
  | { kind: "response"; status: number }
  /** The outbound guard refused the destination, or no answer came (network, DNS, timeout). */
  | { kind: "refused" | "failed"; reason: string };

/** Sends a signed delivery through the outbound guard (no redirects, a deadline, a small body cap). */
export type WebhookSend = (url: string, headers: Record<string, string>, body: string) => Promise<SendOutcome>;

/** Checks a URL against the outbound guard. */
export interface WebhookDestinations {
  check(url: string): Promise<{ allowed: true } | { allowed: false; why: string }>;
}

/** The environment's data key (to seal and open signing secrets). */
export interface DataKeySource {
  dataKey(environment: string): Promise<Buffer>;
}
