import type { Logger } from "pino";
import type { UsageWriter } from "./ports.js";

export interface UsageRecorderDeps {
  writer: UsageWriter;
  /** Usage of an environment that no longer exists is dropped, not written (it would re-create its database). */
  environmentExists(name: string): Promise<boolean>;
  logger: Logger;
}

export type UsageRecorder = ReturnType<typeof createUsageRecorder>;

/**
 * Keeps `last_used_time` without a database write per call: uses are noted in
 * memory and written in one batch per environment by `flush` (every few
 * seconds, and at shutdown). A failed batch is kept for the next flush.
 */
export function createUsageRecorder({ writer, environmentExists, logger }: UsageRecorderDeps) {
  let pending = new Map<string, Map<string, number>>();

  function record(environment: string, tokenId: string, at: number): void {
    let uses = pending.get(environment);
    if (!uses) {
      uses = new Map();
      pending.set(environment, uses);
    }
    if ((uses.get(tokenId) ?? 0) < at) uses.set(tokenId, at);
  }

  let writing: Promise<void> | undefined;

  /** Writes what was noted so far, after any write still under way (flushes never overlap). */
  async function flush(): Promise<void> {
    while (writing) await writing;
    writing = write().finally(() => {
      writing = undefined;
    });
    return writing;
  }

  async function write(): Promise<void> {
    const batch = pending;
    pending = new Map();
    for (const [environment, uses] of batch) {
      try {
        if (!(await environmentExists(environment))) continue;
        await writer.recordUsage(environment, new Map([...uses].map(([id, at]) => [id, new Date(at)])));
      } catch (error) {
        logger.warn({ err: error, environment }, "could not write last-used times; retrying with the next batch");
        for (const [id, at] of uses) record(environment, id, at);
      }
    }
  }

  return {
    record,
    flush,
    /** True while a flush writes: a timer skips its turn rather than queue behind a slow database. */
    busy: () => writing !== undefined,
    pendingCount: () => [...pending.values()].reduce((n, uses) => n + uses.size, 0),
  };
}
