import type { Logger } from "pino";
import { settlesWithin, sleep } from "../src/async.js";
import type { EnvironmentState } from "../src/domain/environments/environments.js";
import { type QueueKind, queueKinds } from "../src/queue/queue-names.js";

/** What the supervisor needs of a BullMQ Worker. */
export interface RunningWorker {
  close(force?: boolean): Promise<void>;
}

export interface WorkerSupervisorDeps {
  /** Every environment record's name, state and incarnation (throws when MongoDB is unreachable). */
  listEnvironments(): Promise<{ name: string; state: EnvironmentState; incarnation: string }[]>;
  startWorker(environment: string, kind: QueueKind): RunningWorker;
  /** Removes a deleted environment's queues, including keys its workers left behind. */
  removeQueues(environment: string): Promise<void>;
  reconcileMs: number;
  logger: Logger;
}

export type WorkerSupervisor = ReturnType<typeof createWorkerSupervisor>;

/** Closes gracefully, then forcibly; never waits longer than `ms` in all (e.g. Redis down). */
async function closeWithin(worker: RunningWorker, ms: number): Promise<boolean> {
  const attempt = (force: boolean) =>
    (force ? worker.close(true) : worker.close()).then(
      () => "closed" as const,
      () => "failed" as const,
    );
  const timeout = (share: number) => sleep(share, { unref: true }).then(() => "timeout" as const);
  if ((await Promise.race([attempt(false), timeout(ms / 2)])) === "closed") return true;
  return (await Promise.race([attempt(true), timeout(ms / 2)])) === "closed";
}

/**
 * Runs the handshake and rotation workers of every active environment, and
 * follows environments as they are created and deleted: on an event at once,
 * otherwise on the next reconcile (every `reconcileMs`). An environment
 * deleted and created again between two passes (events lost) is another
 * incarnation: its workers are started afresh, which also schedules its
 * sweeps again (removing the old queues removed their schedules).
 */
export function createWorkerSupervisor(deps: WorkerSupervisorDeps) {
  const { listEnvironments, startWorker, removeQueues, logger } = deps;
  const running = new Map<string, { incarnation: string; workers: RunningWorker[] }>();
  /** Stopped while being deleted: their queues are removed again once the record is gone. */
  const beingDeleted = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let pass: Promise<void> = Promise.resolve();

  async function stop(environment: string, deleted: boolean): Promise<void> {
    const workers = running.get(environment)?.workers ?? [];
    running.delete(environment);
    await Promise.all(workers.map((w) => closeWithin(w, 5_000)));
    if (deleted) await removeQueues(environment);
    logger.info({ environment, deleted }, "stopped serving environment");
  }

  async function reconcileOnce(): Promise<void> {
    if (closed) return;
    const records = await listEnvironments();
    if (closed) return;
    const states = new Map(records.map((r) => [r.name, r.state]));
    for (const { name, state, incarnation } of records) {
      if (state !== "active") continue;
      const served = running.get(name);
      if (served?.incarnation === incarnation) continue;
      if (served) {
        // Deleted and created again since the last pass: the queues are the new incarnation's now.
        logger.info({ environment: name, was: served.incarnation, incarnation }, "environment was created again");
        await stop(name, false);
        if (closed) return;
      }
      running.set(name, { incarnation, workers: queueKinds.map((kind) => startWorker(name, kind)) });
      logger.info({ environment: name, incarnation }, "serving environment");
    }
    for (const name of [...running.keys()]) {
      const state = states.get(name);
      if (state === "active") continue;
      await stop(name, state === undefined);
      if (state === "deleting") beingDeleted.add(name);
    }
    for (const name of beingDeleted) {
      const state = states.get(name);
      if (state === "deleting") continue;
      beingDeleted.delete(name);
      // A worker may have written keys after DeleteEnvironment removed the queues.
      if (state === undefined) await removeQueues(name);
    }
  }

  /** Serialised: concurrent triggers queue behind the running pass. */
  function reconcile(): Promise<void> {
    pass = pass.then(reconcileOnce).catch((error: unknown) => {
      logger.warn({ err: error }, "could not reconcile environments; retrying");
    });
    return pass;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => {
      reconcile().finally(schedule);
    }, deps.reconcileMs);
  }

  return {
    async start(): Promise<void> {
      await reconcile();
      schedule();
    },
    reconcile,
    serving: () => [...running.keys()].sort(),
    /** Stops every worker within `timeoutMs`, also when Redis is unreachable. */
    async close(timeoutMs: number): Promise<boolean> {
      closed = true;
      clearTimeout(timer);
      // A pass in progress may be starting workers: let it settle first (a quarter of the budget at most).
      const started = Date.now();
      await settlesWithin(pass, timeoutMs / 4);
      const workers = [...running.values()].flatMap((served) => served.workers);
      running.clear();
      const left = Math.max(0, timeoutMs - (Date.now() - started));
      const results = await Promise.all(workers.map((w) => closeWithin(w, left)));
      return results.every(Boolean);
    },
  };
}
