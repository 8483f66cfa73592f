import type { Redis } from "ioredis";
import type { JobName, QueueKind } from "./queue-names.js";
import type { QueueRegistry } from "./queue-registry.js";

/** A repeating job on every environment's queue of one kind: a BullMQ job scheduler whose id is the job name. */
export type JobSchedule = { [K in QueueKind]: { kind: K; name: JobName<K>; everyMs: number } }[QueueKind];

/**
 * `present`: the scheduler exists and its next run is queued. `missing`: Redis
 * has no such scheduler (lost with Redis's data). `stalled`: the scheduler
 * exists but no run of it is pending, so it would never run again.
 */
export type SchedulerState = "present" | "missing" | "stalled";

export interface SchedulerRef {
  environment: string;
  kind: QueueKind;
  name: string;
}

export type JobSchedulers = ReturnType<typeof createJobSchedulers>;

/**
 * Creates or updates one environment's scheduler. For an existing `every`
 * scheduler whose next run is still queued, BullMQ 6.7 keeps that run's time
 * (addJobScheduler-11.lua replaces the queued job "with the same millis"), so
 * this never postpones a sweep; a new scheduler runs at once (delay 0).
 * Finished runs are removed: kept, each queue would grow by a job per run,
 * forever (several thousand a day per environment).
 */
export async function upsertSchedule(
  queues: Pick<QueueRegistry, "queue">,
  environment: string,
  schedule: JobSchedule,
): Promise<void> {
  await queues
    .queue(environment, schedule.kind)
    .upsertJobScheduler(
      schedule.name,
      { every: schedule.everyMs },
      { name: schedule.name, data: {}, opts: { removeOnComplete: true, removeOnFail: true } },
    );
}

async function run(pipeline: ReturnType<Redis["pipeline"]>): Promise<unknown[]> {
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

/**
 * Reads whether job schedulers exist, in two pipelined round trips however
 * many are asked about: ZSCORE of each in its queue's `repeat` set (the time
 * of its next run), then that run's job hash (`repeat:<id>:<time>`), which
 * must exist and not be finished. Uses BullMQ's key layout
 * (getJobScheduler-1.lua, addJobScheduler-11.lua).
 */
export function createJobSchedulers(deps: { connection: Redis; queues: Pick<QueueRegistry, "queue"> }) {
  const { connection, queues } = deps;

  async function inspect(refs: readonly SchedulerRef[]): Promise<SchedulerState[]> {
    if (refs.length === 0) return [];
    const schedulers = refs.map((ref) => ({
      id: ref.name,
      repeatKey: queues.queue(ref.environment, ref.kind).toKey("repeat"),
    }));
    const nextRuns = await run(connection.pipeline(schedulers.map(({ id, repeatKey }) => ["zscore", repeatKey, id])));
    const scheduled = schedulers.flatMap(({ id, repeatKey }, i) => {
      const next = nextRuns[i];
      return next === null ? [] : [{ i, runKey: `${repeatKey}:${id}:${next}` }];
    });
    const runs =
      scheduled.length === 0
        ? []
        : await run(connection.pipeline(scheduled.map(({ runKey }) => ["hmget", runKey, "timestamp", "finishedOn"])));
    const states: SchedulerState[] = refs.map(() => "missing");
    for (const [n, { i }] of scheduled.entries()) {
      const [created, finished] = runs[n] as (string | null)[];
      states[i] = created != null && finished == null ? "present" : "stalled";
    }
    return states;
  }

  return {
    inspect,
    upsert: (environment: string, schedule: JobSchedule) => upsertSchedule(queues, environment, schedule),
  };
}
