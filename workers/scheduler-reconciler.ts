import type { Logger } from "pino";
import type { JobSchedule, SchedulerRef, SchedulerState } from "../src/queue/job-schedulers.js";

/**
 * Environments whose schedulers one pipelined round trip inspects (3 per
 * environment today): a check of 500 environments is 4 round trips of 375
 * ZSCOREs, then as many HMGETs, well under a millisecond of Redis time each.
 */
export const schedulerCheckBatch = 125;

export interface SchedulerReconcilerDeps {
  /** Environments whose workers run in this process now. */
  serving(): string[];
  schedules: readonly JobSchedule[];
  schedulers: {
    inspect(refs: readonly SchedulerRef[]): Promise<SchedulerState[]>;
    upsert(environment: string, schedule: JobSchedule): Promise<void>;
  };
  /**
   * Called once for an environment whose schedulers had to be re-created:
   * Redis lost its data, and with it the jobs of that environment.
   */
  onRestored(environment: string): Promise<void>;
  /** Pause between periodic checks (a FLUSHALL without a disconnect is only seen by these). */
  everyMs: number;
  logger: Logger;
}

export interface ReconcileResult {
  /** Environments checked. */
  checked: number;
  /** Environments whose schedulers were re-created. */
  restored: string[];
}

export type SchedulerReconciler = ReturnType<typeof createSchedulerReconciler>;

/**
 * Keeps every served environment's job schedulers (the sweeps) in Redis. A
 * scheduler is created when a worker starts; Redis restarted without
 * persistence, failed over to an empty replica or flushed loses it, and no
 * sweep would run again. Each pass inspects all of them in a few pipelined
 * round trips and re-creates only what is missing or stalled: upserting every
 * scheduler each time would cost a script with 11 keys per scheduler. An
 * environment is checked from the pass after the one that first saw it
 * served: until then its new workers are creating its schedulers themselves.
 */
export function createSchedulerReconciler(deps: SchedulerReconcilerDeps) {
  const { schedules, schedulers, logger } = deps;
  let running: Promise<ReconcileResult> | undefined;
  let next: Promise<ReconcileResult> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** Served at the previous pass: one served only since is left to its workers, which create its schedulers. */
  let settled = new Set<string>();

  async function restore(environment: string, lost: { schedule: JobSchedule; state: SchedulerState }[]) {
    // Stopped serving meanwhile (deleted, say): re-creating would leave keys behind.
    if (closed || !deps.serving().includes(environment)) return false;
    for (const { schedule } of lost) await schedulers.upsert(environment, schedule);
    logger.warn(
      { environment, schedulers: lost.map(({ schedule, state }) => `${schedule.kind}/${schedule.name}: ${state}`) },
      "re-created job schedulers Redis had lost",
    );
    await deps.onRestored(environment).catch((error: unknown) => {
      logger.warn({ err: error, environment }, "could not ask for a sweep after re-creating schedulers");
    });
    return true;
  }

  async function pass(): Promise<ReconcileResult> {
    const serving = deps.serving();
    const environments = serving.filter((environment) => settled.has(environment));
    settled = new Set(serving);
    const restored: string[] = [];
    for (let start = 0; start < environments.length && !closed; start += schedulerCheckBatch) {
      const batch = environments.slice(start, start + schedulerCheckBatch);
      const refs = batch.flatMap((environment) =>
        schedules.map((schedule) => ({ environment, kind: schedule.kind, name: schedule.name })),
      );
      const states = await schedulers.inspect(refs);
      for (const [e, environment] of batch.entries()) {
        const lost = schedules.flatMap((schedule, s) => {
          const state = states[e * schedules.length + s] ?? "missing";
          return state === "present" ? [] : [{ schedule, state }];
        });
        if (lost.length === 0) continue;
        try {
          if (await restore(environment, lost)) restored.push(environment);
        } catch (error) {
          // The next pass tries again; the other environments go on.
          logger.warn({ err: error, environment }, "could not re-create job schedulers; retrying");
        }
      }
    }
    return { checked: environments.length, restored };
  }

  /**
   * Checks now. Passes never overlap: a call during a pass gets the pass that
   * starts after it (several such calls share one), so nothing that changed
   * before the call goes unseen. Rejects when Redis cannot be read.
   */
  function reconcile(): Promise<ReconcileResult> {
    if (!running) {
      running = pass().finally(() => {
        running = undefined;
      });
      return running;
    }
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return reconcile();
      });
    return next;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => {
      reconcile()
        .catch((error: unknown) => logger.debug({ err: error }, "could not check job schedulers"))
        .finally(schedule);
    }, deps.everyMs);
  }

  return {
    reconcile,
    /** Starts the periodic check (once). */
    start(): void {
      if (timer === undefined) schedule();
    },
    /** Stops checking; resolves once a pass in progress ended. */
    async stop(): Promise<void> {
      closed = true;
      clearTimeout(timer);
      await Promise.allSettled([running, next]);
    },
  };
}
