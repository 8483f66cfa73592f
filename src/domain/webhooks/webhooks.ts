import { createHash, createHmac, randomBytes } from "node:crypto";
import type { AccountStatus, AccountView } from "../accounts/accounts.js";
import { bindingFor } from "../crypto/envelope.js";
import { base62Alphabet, base62Fixed } from "../ids.js";
import type { Token } from "../tokens/tokens.js";

/** Every event type roomkey sends; the contract documents each (WebhookEvent.type). */
export const webhookEventTypes = [
  "account.created",
  "account.active",
  "account.failed",
  "account.needs_reauth",
  "account.recovered",
  "account.deleted",
  "token.created",
  "token.rotated",
  "token.revoked",
  "token.expiring",
  "webhook.endpoint_disabled",
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

export function isWebhookEventType(value: string): value is WebhookEventType {
  return (webhookEventTypes as readonly string[]).includes(value);
}

/** A URL of one environment that receives its events, as stored. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /** Empty: every type. */
  eventTypes: string[];
  enabled: boolean;
  description: string;
  /** Why roomkey disabled it; empty otherwise. */
  disabledReason: string;
  /** Since when every delivery failed; unset after a success. */
  failingSince?: Date;
  /** The signing secret (`whsec_…`), sealed under the environment's data key. */
  sealedSecret: string;
  /** The secret before the last rotation, still signing until `previousSecretExpireTime`. */
  sealedPreviousSecret?: string;
  previousSecretExpireTime?: Date;
  secretRotateTime?: Date;
  createTime: Date;
  updateTime: Date;
  version: number;
}

/** An endpoint as callers see it: no secret, sealed or not. */
export type WebhookEndpointView = Omit<WebhookEndpoint, "sealedSecret" | "sealedPreviousSecret" | "version">;

export function toEndpointView(endpoint: WebhookEndpoint): WebhookEndpointView {
  const { sealedSecret: _s, sealedPreviousSecret: _p, version: _v, ...view } = endpoint;
  return view;
}

/** Whether an endpoint takes events of `type` (enabled or not). */
export function wants(endpoint: Pick<WebhookEndpoint, "eventTypes">, type: string): boolean {
  return endpoint.eventTypes.length === 0 || endpoint.eventTypes.includes(type);
}

/** What an event is about; the contract's WebhookEventData. */
export interface WebhookEventData {
  account?: AccountView;
  previousStatus?: AccountStatus;
  token?: Token;
  previousToken?: Token;
  endpoint?: WebhookEndpointView;
  reason?: string;
}

/** An event as raised, before it is rendered. */
export interface WebhookEventInput {
  type: WebhookEventType;
  /** Names the happening itself: raising it again (a retried job) makes the same event id. */
  key: string;
  /** When it happened (the payload's `timestamp`). */
  time: Date;
  /** The time in the event's id, when `time` could differ between two raises of one happening. */
  idTime?: Date;
  data: WebhookEventData;
}

/** An event as stored: its body is rendered once, so every attempt and redelivery sends the same bytes. */
export interface WebhookEventRecord {
  id: string;
  type: WebhookEventType;
  body: string;
  createTime: Date;
}

export type DeliveryStatus = "pending" | "succeeded" | "failed";

/** One event's delivery to one endpoint. */
export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: string;
  endpointId: string;
  status: DeliveryStatus;
  attempts: number;
  lastResponseCode: number;
  lastError: string;
  lastLatencyMs: number;
  lastAttemptTime?: Date;
  nextAttemptTime?: Date;
  /** The job that carries it now (a redelivery gets another): only that job may attempt it. */
  jobId: string;
  redeliveries: number;
  /** `attempts` when the current round (the first delivery, or a redelivery) began. */
  roundStartAttempts?: number;
  createTime: Date;
}

/** `length` base62 characters of a SHA-256 of `input`: the same for the same input. */
function digest62(input: string, length: number): string {
  let value = BigInt(`0x${createHash("sha256").update(input).digest("hex")}`);
  let out = "";
  for (let i = 0; i < length; i++) {
    out += base62Alphabet[Number(value % 62n)];
    value /= 62n;
  }
  return out;
}

/** `evt_` + the event's time + a digest of its key: the same happening always has the same id (`webhook-id`). */
export function eventIdFor(key: string, time: Date): string {
  return `evt_${base62Fixed(time.getTime(), 8)}${digest62(key, 14)}`;
}

/** One delivery per event and endpoint: its id sorts with the event's time. */
export function deliveryIdFor(eventId: string, endpointId: string): string {
  return `whd_${eventId.slice(4, 12)}${digest62(`${eventId}/${endpointId}`, 14)}`;
}

/** The job of a delivery's `round` (0: the first delivery, then one per redelivery). */
export function deliveryJobId(deliveryId: string, round: number): string {
  return round === 0 ? `deliver-${deliveryId}` : `deliver-${deliveryId}-r${round}`;
}

/** A new delivery of `event` to an endpoint, pending at once, in its `round` (0 unless a redelivery made it). */
export function pendingDelivery(
  event: Pick<WebhookEventRecord, "id" | "type">,
  endpointId: string,
  now: Date,
  round = 0,
): WebhookDelivery {
  const id = deliveryIdFor(event.id, endpointId);
  return {
    id,
    eventId: event.id,
    eventType: event.type,
    endpointId,
    status: "pending",
    attempts: 0,
    lastResponseCode: 0,
    lastError: "",
    lastLatencyMs: 0,
    nextAttemptTime: now,
    jobId: deliveryJobId(id, round),
    redeliveries: round,
    roundStartAttempts: 0,
    createTime: now,
  };
}

/** A delivery job to queue: the delivery it carries and how many attempts it has. */
export interface DeliveryJob {
  deliveryId: string;
  eventId: string;
  endpointId: string;
  jobId: string;
  attempts: number;
}

/** The job that carries `delivery` now, with `attempts`. */
export function deliveryJob(delivery: WebhookDelivery, attempts: number): DeliveryJob {
  const { id: deliveryId, eventId, endpointId, jobId } = delivery;
  return { deliveryId, eventId, endpointId, jobId, attempts };
}

const secretPrefix = "whsec_";

/** A new signing secret, `whsec_<base64 of 32 random bytes>` (the Standard Webhooks format). */
export function newSigningSecret(): string {
  return `${secretPrefix}${randomBytes(32).toString("base64")}`;
}

/** Where an endpoint's sealed secret belongs: it opens for this environment and endpoint only. */
export function secretBinding(environment: string, endpointId: string): string {
  return bindingFor(environment, "webhook_endpoint", endpointId, "secret");
}

/**
 * `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` under the secret's
 * key (the base64 after `whsec_`), per the Standard Webhooks spec.
 */
export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret, "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** The three Standard Webhooks headers, one signature per secret (two during a rotation's overlap). */
export function signedHeaders(
  secrets: readonly string[],
  id: string,
  time: Date,
  body: string,
): Record<string, string> {
  const timestamp = Math.floor(time.getTime() / 1000);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": secrets.map((secret) => signature(secret, id, timestamp, body)).join(" "),
  };
}

/** Attempts left in a delivery's current round of `attempts`. */
export function attemptsLeft(delivery: Pick<WebhookDelivery, "attempts" | "roundStartAttempts">, attempts: number) {
  return Math.max(1, attempts - (delivery.attempts - (delivery.roundStartAttempts ?? 0)));
}
