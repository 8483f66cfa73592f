/**
 * How worker processes share environments and wake for work (workers/supervisor.ts,
 * src/queue/wake-index.ts, workers/sweep-clock.ts); the lease and idle times are
 * configuration (ROOMKEY_WORKER_LEASE_MS, ROOMKEY_WORKER_IDLE_MS).
 */

/**
 * How often a worker process reads the wake index: the most a job waits before
 * its queue's worker is started (one Redis command per poll, however many
 * environments; 10 a second per worker process).
 */
export const wakePollMs = 100;

/** Heartbeats per lease: a process missing two beats in a row still holds its environments. */
export const beatsPerLease = 3;

/**
 * Sweeps running at once in one worker process: hundreds of environments'
 * sweeps queue behind these instead of all reading MongoDB in the same second.
 */
export const sweepConcurrency = 4;

/** How often the sweep clock looks for sweeps due. */
export const sweepTickMs = 250;
