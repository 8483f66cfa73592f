import type { Clock } from "../clock.js";
import type { PageRequest } from "../paging.js";
import { type AuditEntry, type AuditFilter, auditIdFloor } from "./audit.js";
import type { AuditStore } from "./ports.js";

export interface AuditServiceDeps {
  store: AuditStore;
  /** The environment's audit retention (its setting, or the default). */
  retentionMs(environment: string): Promise<number>;
  clock: Clock;
}

/** Entries deleted per round trip by the retention sweep, and round trips per run at most. */
export const retentionBatch = 1_000;
export const retentionBatchesPerRun = 50;

export type AuditService = ReturnType<typeof createAuditService>;

/** Reading an environment's audit log, and keeping it within its retention. */
export function createAuditService({ store, retentionMs, clock }: AuditServiceDeps) {
  /** One page of entries matching `filter`, newest first; `page.after` is the last id of the page before. */
  async function list(
    environment: string,
    filter: AuditFilter,
    page: PageRequest,
  ): Promise<{ items: AuditEntry[]; nextAfter: string | undefined }> {
    const items = await store.list(environment, filter, page.after, page.size + 1);
    if (items.length <= page.size) return { items, nextAfter: undefined };
    const kept = items.slice(0, page.size);
    return { items: kept, nextAfter: kept[kept.length - 1]?.id };
  }

  /**
   * Deletes entries older than the environment's retention, in batches of
   * `retentionBatch`, at most `retentionBatchesPerRun` per run: a backlog
   * (a retention just shortened) is worked off over several runs instead of
   * one long delete.
   */
  async function enforceRetention(environment: string): Promise<{ deleted: number }> {
    const below = auditIdFloor(new Date(clock.now().getTime() - (await retentionMs(environment))));
    let deleted = 0;
    for (let i = 0; i < retentionBatchesPerRun; i++) {
      const gone = await store.deleteOldest(environment, below, retentionBatch);
      deleted += gone;
      if (gone < retentionBatch) break;
    }
    return { deleted };
  }

  return { list, enforceRetention };
}
