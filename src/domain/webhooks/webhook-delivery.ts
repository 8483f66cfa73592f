import { workerActions } from "../audit/audit.js";
import type { WorkerAudit } from "../audit/ports.js";
import type { Clock } from "../clock.js";
import { open } from "../crypto/envelope.js";
import type { DataKeySource, ExpiringTokens, SendOutcome, WebhookQueue, WebhookSend, WebhookStore } from "./ports.js";
import { tokenExpiringEvent, type WebhookRaiser } from "./webhook-raiser.js";
import {
  attemptsLeft,
  deliveryJob,
  secretBinding,
  signedHeaders,
  toEndpointView,
  type WebhookEndpoint,
} from "./webhooks.js";

/** An attempt failed and the delivery will be tried again after `retryAfterMs` (the job's backoff reads it). */
export class DeliveryAttemptFailedError extends Error {
  override readonly name = "DeliveryAttemptFailedError";
  constructor(
    readonly retryAfterMs: number,
    why: string,
  ) {
    super(`webhook delivery failed: ${why}; next attempt in ${retryAfterMs} ms`);
  }
}

export interface WebhookDeliveryDeps {
  store: WebhookStore;
  queue: WebhookQueue;
  keys: DataKeySource;
  send: WebhookSend;
  raiser: Pick<WebhookRaiser, "raise" | "raiseCommitted">;
  expiring: ExpiringTokens;
  /** Attempts of a delivery in all, and the delay before the attempt after `failed` failed ones. */
  attempts: number;
  retryDelayMs(failed: number): number;
  /** Plain http:// endpoints may be called; checked at every attempt, so turning it off stops them at once. */
  allowHttp: boolean;
  /** An endpoint whose every delivery failed for this long is disabled. */
  disableAfterMs: number;
  /** token.expiring is raised this long before a token expires. */
  expiringWindowMs: number;
  /** Events and deliveries older than this are purged. */
  retentionMs: number;
  /** A delivery this long past its due time without an attempt lost its job: the sweep queues it again. */
  overdueMs: number;
  clock: Clock;
  /** Told of each attempt and each endpoint disabled (metrics). */
  observe?: {
    attempt(environment: string, outcome: "succeeded" | "failed", seconds: number): void;
    disabled(environment: string): void;
  };
  /** Where disables are recorded (the environment's audit log). */
  audit?: WorkerAudit;
}

export type DeliveryOutcome =
  | { outcome: "succeeded"; status: number }
  | { outcome: "failed"; why: string }
  | { outcome: "skipped"; why: string };

/** How one answer counts: 2xx is a success, anything else a failure with a reason. */
function judge(result: SendOutcome): { ok: true; code: number } | { ok: false; code: number; error: string } {
  if (result.kind !== "response") return { ok: false, code: 0, error: result.reason };
  if (result.status >= 200 && result.status < 300) return { ok: true, code: result.status };
  const redirect = result.status >= 300 && result.status < 400 ? " (redirects are not followed)" : "";
  return { ok: false, code: result.status, error: `HTTP ${result.status}${redirect}` };
}

/** A URL as other receivers may see it: scheme, host and path; no user, password, query or fragment. */
function withoutSecrets(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return "";
  }
}

function describeSpan(ms: number): string {
  if (ms >= 86_400_000) return `${Math.round(ms / 3_600_000)} hours`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} minutes`;
  return `${Math.round(ms / 1000)} seconds`;
}

/**
 * Delivering events, on each environment's webhook queue (the raise made
 * their deliveries): one signed POST per attempt, the failing record that
 * disables an endpoint, and the sweep that re-queues what Redis lost, raises
 * token.expiring and purges old log entries.
 */
export function createWebhookDelivery(deps: WebhookDeliveryDeps) {
  const { store, queue, keys, clock } = deps;
  const expiringCheckMs = Math.min(15 * 60_000, deps.expiringWindowMs / 100);
  const expiringCheckedAt = new Map<string, number>();

  /** The secrets that sign now: the current one, and the previous one during its overlap. */
  async function signingSecrets(environment: string, endpoint: WebhookEndpoint, now: Date): Promise<string[]> {
    const key = await keys.dataKey(environment);
    const binding = secretBinding(environment, endpoint.id);
    const secrets = [open(key, endpoint.sealedSecret, binding).toString("utf8")];
    if (endpoint.sealedPreviousSecret && (endpoint.previousSecretExpireTime?.getTime() ?? 0) > now.getTime()) {
      secrets.push(open(key, endpoint.sealedPreviousSecret, binding).toString("utf8"));
    }
    return secrets;
  }

  /** Disables an endpoint that kept failing, ends its pending deliveries, and tells the others. */
  async function disable(environment: string, endpoint: WebhookEndpoint, lastError: string): Promise<void> {
    const since = endpoint.failingSince ?? clock.now();
    const now = clock.now();
    const reason =
      `every delivery failed for ${describeSpan(now.getTime() - since.getTime())} ` +
      `(since ${since.toISOString()}; last: ${lastError})`;
    const changes = { enabled: false, disabledReason: reason, updateTime: now };
    if (!(await store.updateEndpoint(environment, endpoint, changes))) return;
    deps.observe?.disabled(environment);
    await deps.audit?.record(environment, {
      method: workerActions.endpointDisable,
      resource: endpoint.id,
      details: { from: "ENABLED", to: "DISABLED" },
    });
    await store.failPending(environment, endpoint.id, "the endpoint was disabled", now);
    // Told to the environment's other receivers: the URL without a query or credentials that may be secret.
    const disabled = { ...endpoint, ...changes, url: withoutSecrets(endpoint.url) };
    await deps.raiser.raiseCommitted(environment, {
      type: "webhook.endpoint_disabled",
      key: `endpoint/${endpoint.id}/disabled/${since.getTime()}`,
      time: now,
      data: { endpoint: toEndpointView(disabled), reason },
    });
  }

  /** Keeps the endpoint's failing record: started at its first failure, cleared by a success. */
  async function noteOutcome(environment: string, endpoint: WebhookEndpoint, ok: boolean, error: string) {
    const now = clock.now();
    if (ok) {
      if (endpoint.failingSince) await store.updateEndpoint(environment, endpoint, {}, ["failingSince"]);
      return;
    }
    if (!endpoint.failingSince) {
      await store.updateEndpoint(environment, endpoint, { failingSince: now });
    } else if (now.getTime() - endpoint.failingSince.getTime() >= deps.disableAfterMs) {
      await disable(environment, endpoint, error);
    }
  }

  /**
   * One attempt of one delivery, by the job `target.jobId` (`failedBefore` of
   * its `attemptsOfJob` attempts failed already). Only the job that carries a
   * pending delivery attempts it: a job it was taken from (a redelivery, a
   * re-queue after Redis lost it) or one that comes after it ended sends
   * nothing. Throws DeliveryAttemptFailedError when another attempt is due;
   * the last one of its round ends the delivery FAILED instead.
   */
  async function deliver(
    environment: string,
    target: { deliveryId: string; eventId: string; endpointId: string; jobId: string },
    failedBefore: number,
    attemptsOfJob: number,
  ): Promise<DeliveryOutcome> {
    const { deliveryId, jobId } = target;
    const delivery = await store.getDelivery(environment, deliveryId);
    if (!delivery) return { outcome: "skipped", why: "the delivery is gone (purged)" };
    if (delivery.status !== "pending") return { outcome: "skipped", why: `the delivery ${delivery.status}` };
    if (delivery.jobId !== jobId) return { outcome: "skipped", why: "another job carries the delivery" };
    const endpoint = await store.getEndpoint(environment, target.endpointId);
    if (!endpoint?.enabled) {
      const why = endpoint ? "the endpoint is disabled" : "the endpoint was deleted";
      await store.failPending(environment, target.endpointId, why, clock.now());
      return { outcome: "skipped", why };
    }
    const event = await store.getEvent(environment, target.eventId);
    if (!event) {
      await store.endDelivery(environment, deliveryId, "the event was purged", clock.now());
      return { outcome: "skipped", why: "the event was purged" };
    }
    const started = clock.now();
    const headers = {
      "content-type": "application/json",
      ...signedHeaders(await signingSecrets(environment, endpoint, started), event.id, started, event.body),
    };
    const before = performance.now();
    const result: SendOutcome =
      deps.allowHttp || !endpoint.url.startsWith("http:")
        ? await deps.send(endpoint.url, headers, event.body)
        : { kind: "refused", reason: "this deployment sends webhooks over https only (ROOMKEY_WEBHOOK_ALLOW_HTTP)" };
    const latencyMs = Math.round(performance.now() - before);
    const verdict = judge(result);
    deps.observe?.attempt(environment, verdict.ok ? "succeeded" : "failed", latencyMs / 1000);
    const error = verdict.ok ? "" : verdict.error;
    // Attempts of this round made before this one, as written down: a re-queued job goes on with the schedule.
    const madeInRound = delivery.attempts - (delivery.roundStartAttempts ?? 0);
    const last = madeInRound + 1 >= deps.attempts || failedBefore + 1 >= attemptsOfJob;
    const delayMs = verdict.ok || last ? 0 : deps.retryDelayMs(madeInRound + 1);
    const now = clock.now();
    const recorded = await store.recordAttempt(environment, deliveryId, jobId, {
      status: verdict.ok ? "succeeded" : last ? "failed" : "pending",
      responseCode: verdict.code,
      error,
      latencyMs,
      time: now,
      ...(verdict.ok || last ? {} : { nextAttemptTime: new Date(now.getTime() + delayMs) }),
    });
    if (!recorded) return { outcome: "skipped", why: "another job took the delivery over during the attempt" };
    await noteOutcome(environment, endpoint, verdict.ok, error);
    if (verdict.ok) return { outcome: "succeeded", status: verdict.code };
    // Disabled meanwhile (by this failure or another): no more attempts.
    const still = await store.getEndpoint(environment, endpoint.id);
    if (last || !still?.enabled) return { outcome: "failed", why: error };
    throw new DeliveryAttemptFailedError(delayMs, error);
  }

  /**
   * Queues again what Redis lost (pending deliveries overdue by two lock
   * periods: a job still queued absorbs its copy) and raises token.expiring
   * for tokens that entered the window.
   */
  async function sweep(environment: string): Promise<{ requeued: number; expiring: number }> {
    const now = clock.now();
    const stale = new Date(now.getTime() - deps.overdueMs);
    const overdue = await store.listOverdue(environment, stale, 100);
    const requeued =
      overdue.length === 0
        ? 0
        : await queue.requeue(
            environment,
            overdue.map((d) => deliveryJob(d, attemptsLeft(d, deps.attempts))),
          );
    // Days ahead, not minutes: looked for at most every `expiringCheckMs` per environment (and process).
    let tokens: Awaited<ReturnType<ExpiringTokens["listExpiringUnannounced"]>> = [];
    if (now.getTime() - (expiringCheckedAt.get(environment) ?? 0) >= expiringCheckMs) {
      tokens = await deps.expiring.listExpiringUnannounced(
        environment,
        new Date(now.getTime() + deps.expiringWindowMs),
        100,
      );
      if (tokens.length < 100) expiringCheckedAt.set(environment, now.getTime());
    }
    for (const token of tokens) {
      await deps.raiser.raise(environment, tokenExpiringEvent(token, deps.expiringWindowMs, now));
      await deps.expiring.markExpiringAnnounced(environment, token.id, now);
    }
    return { requeued, expiring: tokens.length };
  }

  function purge(environment: string) {
    const now = clock.now().getTime();
    // A token.expiring notice is kept while its token can still be in the window: sent once, never twice.
    const noticeKeepMs = Math.max(deps.retentionMs, deps.expiringWindowMs + 86_400_000);
    return store.purge(environment, new Date(now - deps.retentionMs), new Date(now - noticeKeepMs));
  }

  return { deliver, sweep, purge };
}
