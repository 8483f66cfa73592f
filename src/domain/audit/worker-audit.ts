import type { AccountEvent } from "../accounts/accounts.js";
import type { AccountEvents } from "../accounts/ports.js";
import { workerActions } from "./audit.js";
import type { WorkerAudit } from "./ports.js";

/**
 * The worker's account events, each status change also written to the
 * environment's audit log (before it is published: the log never misses a
 * change that watchers saw). Only the worker's own changes come through
 * here; a call's changes are the call's entry.
 */
export function auditedAccountEvents(events: AccountEvents, audit: WorkerAudit): AccountEvents {
  return {
    async publish(environment: string, event: AccountEvent) {
      const { account, previousStatus } = event;
      if (account.status !== previousStatus) {
        await audit.record(environment, {
          method: workerActions.accountStatus,
          resource: account.id,
          details: {
            from: previousStatus.toUpperCase(),
            to: account.status.toUpperCase(),
            ...(event.handshake ? { handshake_attempt: String(event.handshake.attempt) } : {}),
            ...(event.reauthorizedFrom ? { reauthorized_from: event.reauthorizedFrom.toUpperCase() } : {}),
          },
        });
      }
      await events.publish(environment, event);
    },
  };
}
