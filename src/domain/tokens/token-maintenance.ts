import { workerActions } from "../audit/audit.js";
import type { WorkerAudit } from "../audit/ports.js";
import type { Clock } from "../clock.js";
import { idempotencyWindowMs } from "../idempotency.js";
import type { TokenInvalidations, TokenMaintenanceStore } from "./ports.js";

export interface TokenMaintenanceDeps {
  store: TokenMaintenanceStore;
  invalidations: TokenInvalidations;
  /** The environment's retention for ended tokens. */
  retentionMs(environment: string): Promise<number>;
  clock: Clock;
  /** Where retirements are recorded (the environment's audit log). */
  audit?: WorkerAudit;
}

export type TokenMaintenance = ReturnType<typeof createTokenMaintenance>;

/**
 * The rotation worker's token jobs. Each one reads the state it acts on and
 * changes only what is still due, so running a job twice does no harm.
 */
export function createTokenMaintenance(deps: TokenMaintenanceDeps) {
  const { store, invalidations, clock } = deps;

  /** A rotated token retired: every replica forgets it, and the audit log says so. */
  async function retired(environment: string, token: { id: string; hash: string }): Promise<void> {
    await deps.audit?.record(environment, {
      method: workerActions.tokenRetire,
      resource: token.id,
      details: { from: "ROTATED", to: "RETIRED" },
    });
    await invalidations.publish(environment, token.hash);
  }

  /**
   * Retires a rotated token whose grace has ended: every replica forgets it.
   * Returns when to try again if the grace has not ended yet.
   */
  async function retire(environment: string, tokenId: string): Promise<{ retryAt?: Date }> {
    const token = await store.get(environment, tokenId);
    if (!token?.rotateTime || !token.graceExpireTime) return {};
    const now = clock.now();
    if (token.graceExpireTime > now) return { retryAt: token.graceExpireTime };
    if (await store.retire(environment, tokenId, now)) await retired(environment, token);
    return {};
  }

  /** The periodic sweep: mark expired tokens, retire what a lost job did not, purge what ended long ago. */
  async function sweep(environment: string): Promise<{ expired: number; retired: number; purged: number }> {
    const now = clock.now();
    // Lost messages matter little here: verification checks expiry and grace itself.
    const expired = await store.markExpired(environment, now);
    for (const token of expired) await invalidations.publish(environment, token.hash);
    let retiredCount = 0;
    for (const token of await store.dueForRetirement(environment, now)) {
      if (await store.retire(environment, token.id, now)) {
        retiredCount++;
        await retired(environment, token);
      }
    }
    const retention = await deps.retentionMs(environment);
    const purged = await store.purgeEnded(environment, new Date(now.getTime() - retention));
    await store.purgeIdempotency(environment, new Date(now.getTime() - idempotencyWindowMs));
    return { expired: expired.length, retired: retiredCount, purged };
  }

  return { retire, sweep };
}
