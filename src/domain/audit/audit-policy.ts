/**
 * The audit log's limits, each named once. An unauthenticated caller's
 * refusals are held in memory up to `maxBufferedEntries` and written every
 * `flushEveryMs` in batches of `maxBatchEntries` per environment: at most
 * one insertMany per environment and flush for a flood, whatever its rate;
 * what does not fit is dropped and counted (roomkey_audit_entries_dropped_total).
 */
export const auditPolicy = {
  /** Refusals (and entries whose write failed) held in memory at most, per process. */
  maxBufferedEntries: 10_000,
  /** Of those, at most this many of one environment: a flood in one cannot crowd out the others. */
  maxBufferedPerEnvironment: 1_000,
  /** How long a call waits for its entry's write before it answers anyway (the entry is written again later). */
  writeTimeoutMs: 2_000,
  /** How long the last flush at shutdown may take. */
  finalFlushMs: 3_000,
  /** Entries of one environment per insertMany when the buffer is flushed. */
  maxBatchEntries: 500,
  /** How often the buffer is flushed. */
  flushEveryMs: 1_000,
  /** How often each environment's retention sweep runs. */
  retentionSweepEveryMs: 10 * 60_000,
} as const;
