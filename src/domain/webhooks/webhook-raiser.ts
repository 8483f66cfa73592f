import { sleep } from "../../async.js";
import type { AccountEvent } from "../accounts/accounts.js";
import type { Clock } from "../clock.js";
import type { Token } from "../tokens/tokens.js";
import type { WebhookQueue, WebhookStore } from "./ports.js";
import {
  deliveryJob,
  eventIdFor,
  pendingDelivery,
  type WebhookEventData,
  type WebhookEventInput,
  type WebhookEventType,
  wants,
} from "./webhooks.js";

/** An event as the contract's WebhookEvent carries it, for rendering into its JSON body. */
export interface RenderableEvent {
  id: string;
  type: WebhookEventType;
  environment: string;
  time: Date;
  data: WebhookEventData;
}

export interface WebhookRaiserDeps {
  store: Pick<WebhookStore, "allEndpoints" | "insertEvent" | "insertDeliveries">;
  queue: Pick<WebhookQueue, "deliver">;
  /** Attempts of a delivery (the retry schedule's). */
  attempts: number;
  /** The JSON body (the contract's WebhookEvent in the protobuf JSON mapping). */
  render(event: RenderableEvent): string;
  clock: Clock;
  /** For a raise that failed after what it reports was committed. */
  warn(message: string, details: Record<string, unknown>): void;
  /** Tries of a raise after a commit, and the pause between them. */
  retries?: { tries: number; pauseMs: number };
}

export type WebhookRaiser = ReturnType<typeof createWebhookRaiser>;

/**
 * Raises webhook events: stores one delivery per enabled endpoint that wants
 * the type, then the event (its body rendered once, its id derived from what
 * happened, so a retried job raises the same event), then queues the
 * deliveries. An environment without an endpoint that wants the type stores
 * nothing: one read is all an event costs there. Deliveries that could not be
 * queued (Redis down, or lost by Redis later) are pending in MongoDB, where
 * the webhook sweep finds them.
 */
export function createWebhookRaiser(deps: WebhookRaiserDeps) {
  const { store, queue, clock } = deps;
  const retries = deps.retries ?? { tries: 3, pauseMs: 250 };

  async function raise(environment: string, input: WebhookEventInput): Promise<string | undefined> {
    const endpoints = (await store.allEndpoints(environment)).filter((e) => e.enabled && wants(e, input.type));
    if (endpoints.length === 0) return undefined;
    const id = eventIdFor(input.key, input.idTime ?? input.time);
    const body = deps.render({ id, type: input.type, environment, time: input.time, data: input.data });
    const now = clock.now();
    const deliveries = endpoints.map((endpoint) => pendingDelivery({ id, type: input.type }, endpoint.id, now));
    // The deliveries first: an event is never stored without them. Raised again (a retold outcome), the
    // event exists already and nothing is queued twice; what the first raise could not queue, the sweep does.
    await store.insertDeliveries(environment, deliveries);
    if (!(await store.insertEvent(environment, { id, type: input.type, body, createTime: now }))) {
      return id;
    }
    try {
      await queue.deliver(
        environment,
        deliveries.map((d) => deliveryJob(d, deps.attempts)),
      );
    } catch (error) {
      deps.warn("could not queue webhook deliveries; the webhook sweep will", {
        environment,
        event: id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    return id;
  }

  /** Raises an event for a change already committed: a few tries, then a warning; never fails its caller. */
  async function raiseCommitted(environment: string, input: WebhookEventInput): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await raise(environment, input);
        return;
      } catch (error) {
        if (attempt >= retries.tries) {
          deps.warn("a webhook event was lost: it could not be stored", {
            environment,
            type: input.type,
            key: input.key,
            error: error instanceof Error ? error.message : String(error),
          });
          return;
        }
        await sleep(retries.pauseMs);
      }
    }
  }

  return { raise, raiseCommitted };
}

/** The webhook type of an account status change, if it has one. */
export function accountEventType(event: AccountEvent): WebhookEventType | undefined {
  const { status } = event.account;
  if (event.previousStatus === status) return status === "connecting" ? "account.created" : undefined;
  // A re-authorization that failed: the account went back to its old status and credentials.
  if (event.previousStatus === "connecting" && event.account.reauthorizationFailed) return "account.failed";
  switch (status) {
    case "active":
      return event.reauthorizedFrom === "needs_reauth" ? "account.recovered" : "account.active";
    case "failed":
      return "account.failed";
    case "needs_reauth":
      return "account.needs_reauth";
    case "disconnected":
      return "account.deleted";
    default:
      return undefined;
  }
}

/** Account status changes as webhook events. */
export function accountWebhooks(raiser: Pick<WebhookRaiser, "raiseCommitted">) {
  return async (environment: string, event: AccountEvent): Promise<void> => {
    const type = accountEventType(event);
    if (!type) return;
    const { account } = event;
    const reason = type === "account.failed" || type === "account.needs_reauth" ? account.statusReason : "";
    // A handshake's outcome is named by its attempt: told again by a later run, it is the same event.
    const { handshake } = event;
    await raiser.raiseCommitted(environment, {
      type,
      key: handshake
        ? `account/${account.id}/handshake/${handshake.attempt}/${type}`
        : `account/${account.id}/${type}/${event.eventTime.getTime()}`,
      time: event.eventTime,
      ...(handshake ? { idTime: handshake.startTime } : {}),
      data: { account, previousStatus: event.previousStatus, ...(reason ? { reason } : {}) },
    });
  };
}

/** The token.expiring event of a token: the same whichever process raises it, whenever. */
export function tokenExpiringEvent(token: Token, windowMs: number, now: Date): WebhookEventInput {
  const expireTime = token.expireTime ?? now;
  // When it entered the window (or was made, if it was made inside it): the same on every raise.
  const entered = Math.max(token.createTime.getTime(), expireTime.getTime() - windowMs);
  return {
    type: "token.expiring",
    key: `token/${token.id}/token.expiring/${expireTime.getTime()}`,
    time: new Date(Math.min(now.getTime(), entered)),
    data: { token },
  };
}

export interface TokenWebhookDeps {
  raiser: Pick<WebhookRaiser, "raiseCommitted">;
  clock: Clock;
  /** token.expiring is sent this long before a token expires. */
  expiringWindowMs: number;
  /** Remembers that a token's token.expiring was raised (the sweep then leaves it). */
  announceExpiring(environment: string, tokenId: string, at: Date): Promise<void>;
}

/**
 * Token changes as webhook events (the tokens area's TokenEvents port). A
 * token made to expire within the window is also announced as expiring at
 * once; the webhook sweep announces the others when they enter it.
 */
export function tokenWebhooks({ raiser, clock, expiringWindowMs, announceExpiring }: TokenWebhookDeps) {
  const raise = (environment: string, type: WebhookEventType, token: Token, time: Date, previous?: Token) =>
    raiser.raiseCommitted(environment, {
      type,
      key: `token/${token.id}/${type}`,
      time,
      data: { token, ...(previous ? { previousToken: previous } : {}) },
    });
  return {
    async created(environment: string, token: Token) {
      await raise(environment, "token.created", token, token.createTime);
      const now = clock.now();
      if (token.expireTime && token.expireTime.getTime() - now.getTime() <= expiringWindowMs) {
        await raiser.raiseCommitted(environment, tokenExpiringEvent(token, expiringWindowMs, now));
        await announceExpiring(environment, token.id, now).catch(() => undefined);
      }
    },
    rotated: (environment: string, token: Token, previous: Token) =>
      raise(environment, "token.rotated", token, token.createTime, previous),
    revoked: (environment: string, token: Token) =>
      raise(environment, "token.revoked", token, token.revokeTime ?? clock.now()),
  };
}
