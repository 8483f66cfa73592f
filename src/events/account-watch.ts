import type { AccountEvent, AccountStatus, AccountView } from "../domain/accounts/accounts.js";
import type { AccountEvents } from "../domain/accounts/ports.js";
import { RoomkeyError } from "../domain/errors.js";
import type { EventBus } from "./event-bus.js";

/** The pub/sub channel of one environment's account status changes. */
export function accountsChannel(environment: string): string {
  return `accounts.${environment}`;
}

const statuses = new Set<AccountStatus>(["connecting", "active", "failed", "needs_reauth", "disconnected"]);
const dateFields = ["createTime", "updateTime", "credentialsExpireTime", "lastRefreshTime"] as const;

/** An event as it came over Redis (JSON: dates are strings), or undefined if it is not one. */
export function accountEventFromWire(payload: unknown): AccountEvent | undefined {
  const event = payload as { account?: Record<string, unknown>; previousStatus?: unknown; eventTime?: unknown } | null;
  const account = event?.account;
  if (!account || typeof account !== "object" || typeof account.id !== "string") return undefined;
  if (!statuses.has(account.status as AccountStatus) || !statuses.has(event.previousStatus as AccountStatus)) {
    return undefined;
  }
  const revived: Record<string, unknown> = { ...account };
  for (const field of dateFields) {
    if (typeof account[field] === "string") revived[field] = new Date(account[field]);
  }
  return {
    account: revived as unknown as AccountView,
    previousStatus: event.previousStatus as AccountStatus,
    eventTime: new Date(typeof event.eventTime === "string" ? event.eventTime : Date.now()),
  };
}

export interface AccountWatchDeps {
  bus: EventBus;
  /** Events a watcher may fall behind by before its stream ends with RESOURCE_EXHAUSTED. */
  maxBacklog: number;
}

/**
 * Account status changes over Redis pub/sub: published by whichever process
 * made the change (API replica or worker), streamed by every replica's
 * WatchAccounts. Delivery is at most once; a watcher that needs certainty
 * lists accounts after it starts watching.
 */
export function createAccountWatch({ bus, maxBacklog }: AccountWatchDeps) {
  const events: AccountEvents = {
    async publish(environment, event) {
      await bus.publish(accountsChannel(environment), event);
    },
  };

  /** Events of `environment` from now until `signal` aborts (client cancel, deadline, shutdown). */
  async function* watch(environment: string, signal: AbortSignal): AsyncGenerator<AccountEvent> {
    const backlog: AccountEvent[] = [];
    let overflowed = false;
    let wake: (() => void) | undefined;
    const unsubscribe = bus.subscribe(accountsChannel(environment), (payload) => {
      const event = accountEventFromWire(payload);
      // Past a gap nothing more is queued: the watcher gets what came before it, then the error.
      if (!event || overflowed) return;
      if (backlog.length >= maxBacklog) overflowed = true;
      else backlog.push(event);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        const next = backlog.shift();
        if (next) {
          yield next;
          continue;
        }
        if (overflowed) {
          throw new RoomkeyError(
            "resource_exhausted",
            "WATCH_TOO_SLOW",
            `the watcher fell more than ${maxBacklog} events behind; watch again and list accounts to catch up`,
          );
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      unsubscribe();
    }
  }

  return { events, watch };
}
