import type { Logger } from "pino";
import { settlesWithin, sleep } from "../src/async.js";
import { parseEnvironmentName } from "../src/domain/environments/environment-name.js";
import type { EnvironmentState } from "../src/domain/environments/environments.js";
import { parseQueueName, type QueueKind, queueKinds, queueName } from "../src/queue/queue-names.js";
import type { WakeEntry } from "../src/queue/wake-index.js";
import { type FleetView, ownerOf } from "../src/queue/worker-fleet.js";

/** What the supervisor needs of a BullMQ Worker. */
export interface RunningWorker {
  close(force?: boolean): Promise<void>;
}

/** Told when a worker's job starts and ends: a worker with none running for a while is closed. */
export interface JobActivity {
  started(): void;
  finished(): void;
}

export interface WorkerSupervisorDeps {
  /** Every environment record's name, state and incarnation (throws when MongoDB is unreachable). */
  listEnvironments(): Promise<{ name: string; state: EnvironmentState; incarnation: string }[]>;
  startWorker(environment: string, kind: QueueKind, activity: JobActivity): RunningWorker;
  /** Removes a deleted environment's queues, including keys its workers left behind, and its wake entries. */
  removeQueues(environment: string): Promise<void>;
  /** This process's membership of the worker fleet (src/queue/worker-fleet.ts). */
  fleet: { id: string; beat(now: number): Promise<FleetView>; leave(): Promise<void> };
  /** The wake index (src/queue/wake-index.ts). */
  wakes: {
    due(now: number, limit: number): Promise<WakeEntry[]>;
    take(entry: WakeEntry): Promise<boolean>;
    at(queue: string, at: number): Promise<void>;
  };
  /**
   * When a queue next has a job to run: now (jobs waiting), a delayed job's
   * time, or a lock's expiry (jobs active without a live worker, which its
   * stalled check then takes back); undefined when it has none.
   */
  nextWork(environment: string, kind: QueueKind): Promise<number | undefined>;
  /** The periodic sweeps of the environments served (workers/sweep-clock.ts). */
  sweeps: { add(environment: string): void; remove(environment: string): void };
  /** Redis came back without its data: the environment's lost work is to be found again. */
  onRedisLost(environment: string): Promise<void>;
  reconcileMs: number;
  /** Heartbeat of the fleet lease (a third of the lease or less). */
  beatMs: number;
  /** How often the wake index is read. */
  pollMs: number;
  /** A worker with no job for this long is closed. */
  idleMs: number;
  logger: Logger;
  now?: () => number;
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

interface LiveQueue {
  environment: string;
  kind: QueueKind;
  worker: RunningWorker;
  inFlight: number;
  lastActivity: number;
  closing?: Promise<void>;
}

/** Due wake entries read per poll. */
const wakeBatch = 2_000;
/** Queues inspected at once (taken-on environments, closed workers). */
const inspectBatch = 50;
/** A due entry of an environment not listed for this long belongs to none: it is removed. */
const orphanEntryMs = 60_000;

/**
 * Serves this process's share of the environments, lazily. Environments are
 * shared out among the worker processes (`ownerOf` over the fleet's live
 * members); of its own, a process runs the sweeps in process and a BullMQ
 * worker only for a queue that has work, as the wake index says, closing it
 * once it has been idle for `idleMs`. An idle environment thus holds no
 * blocking Redis connection and sends Redis no command.
 *
 * Environments are followed as they are created and deleted (on an event at
 * once, else every `reconcileMs`); an environment deleted and created again
 * between two passes is another incarnation, served afresh. A process that
 * dies stops renewing its lease: within the lease the others take its
 * environments, look at their queues (jobs left waiting, delayed, or active
 * under its expired locks) and run them.
 */
export function createWorkerSupervisor(deps: WorkerSupervisorDeps) {
  const { listEnvironments, startWorker, removeQueues, fleet, wakes, logger } = deps;
  const now = deps.now ?? Date.now;
  /** Active environments and their incarnations, as last listed. */
  let active = new Map<string, string>();
  /** Whether `active` comes from a listing yet (MongoDB may not have answered). */
  let listed = false;
  let members: string[] = [fleet.id];
  /** The environments this process serves, and the incarnation it serves. */
  const owned = new Map<string, string>();
  const live = new Map<string, LiveQueue>();
  /** Queues to look at: taken on, or closed when the look failed. */
  const toInspect = new Map<string, { environment: string; kind: QueueKind }>();
  /** Stopped while being deleted: their queues are removed again once the record is gone. */
  const beingDeleted = new Set<string>();
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let pass: Promise<void> = Promise.resolve();
  let polling: Promise<void> | undefined;

  function queueOf(environment: string, kind: QueueKind): string {
    return queueName(parseEnvironmentName(environment, "environment"), kind);
  }

  function startQueue(environment: string, kind: QueueKind): void {
    const activity = { inFlight: 0, lastActivity: now() };
    const worker = startWorker(environment, kind, {
      started() {
        activity.inFlight++;
        activity.lastActivity = now();
      },
      finished() {
        activity.inFlight--;
        activity.lastActivity = now();
      },
    });
    live.set(queueOf(environment, kind), Object.assign(activity, { environment, kind, worker }));
  }

  /**
   * Closes a queue's worker, then writes back when its queue next has work:
   * jobs added while it closed, a retry its last job left delayed, or, if the
   * environment moved to another process meanwhile, whatever that process
   * started too early to see. The entry stays (and no second worker starts for
   * the queue) until BullMQ's close has finished: a forced close in BullMQ 6.7
   * only waits for the graceful one already under way.
   */
  function stopQueue(queue: string, entry: LiveQueue): Promise<void> {
    entry.closing ??= (async () => {
      await entry.worker.close().catch((error: unknown) => logger.warn({ err: error, queue }, "worker close failed"));
      live.delete(queue);
      if (!closed && active.has(entry.environment)) await lookAt(entry.environment, entry.kind);
    })();
    return entry.closing;
  }

  async function lookAt(environment: string, kind: QueueKind): Promise<void> {
    const queue = queueOf(environment, kind);
    try {
      const next = await deps.nextWork(environment, kind);
      if (next !== undefined) await wakes.at(queue, next);
      toInspect.delete(queue);
    } catch (error) {
      toInspect.set(queue, { environment, kind });
      logger.debug({ err: error, queue }, "could not look at a queue; trying again");
    }
  }

  /** Stops serving; its workers close in the background (a job running may take a while to finish). */
  function give(environment: string): void {
    owned.delete(environment);
    deps.sweeps.remove(environment);
    for (const [name, q] of live) {
      if (q.environment !== environment) continue;
      stopQueue(name, q).catch((error: unknown) => logger.warn({ err: error, queue: name }, "could not close"));
    }
    for (const kind of queueKinds) toInspect.delete(queueOf(environment, kind));
    logger.info({ environment }, "stopped serving environment");
  }

  function take(environment: string, incarnation: string): void {
    owned.set(environment, incarnation);
    deps.sweeps.add(environment);
    for (const kind of queueKinds) toInspect.set(queueOf(environment, kind), { environment, kind });
    logger.info({ environment, incarnation }, "serving environment");
  }

  /**
   * Serves exactly the active environments this process owns among the
   * members. With `lookAgain`, every queue served is looked at once more: when
   * members change, a process that served an environment until now may have
   * started (or died) after this one last looked, leaving a job no entry names.
   */
  async function rebalance(lookAgain = false): Promise<void> {
    const given: string[] = [];
    const taken: string[] = [];
    for (const [environment, incarnation] of owned) {
      const current = active.get(environment);
      const mine = current !== undefined && ownerOf(environment, members) === fleet.id;
      if (mine && current === incarnation) continue;
      if (current !== undefined && current !== incarnation) {
        logger.info({ environment, was: incarnation, incarnation: current }, "environment was created again");
      }
      given.push(environment);
    }
    for (const environment of given) give(environment);
    for (const [environment, incarnation] of active) {
      if (owned.has(environment) || ownerOf(environment, members) !== fleet.id) continue;
      taken.push(environment);
      take(environment, incarnation);
    }
    if (lookAgain) {
      for (const environment of owned.keys()) {
        for (const kind of queueKinds) toInspect.set(queueOf(environment, kind), { environment, kind });
      }
    }
    if (given.length + taken.length > 0) {
      logger.debug({ served: owned.size, members: members.length, taken, given }, "environments rebalanced");
    }
  }

  async function reconcileOnce(): Promise<void> {
    if (closed) return;
    const records = await listEnvironments();
    if (closed) return;
    const states = new Map(records.map((r) => [r.name, r.state]));
    active = new Map(records.filter((r) => r.state === "active").map((r) => [r.name, r.incarnation]));
    listed = true;
    const served = [...owned.keys()];
    await rebalance();
    // Served here until its record vanished: its queues go (DeleteEnvironment removed them; a worker may have written since).
    for (const name of served) if (!states.has(name) && !closed) await removeQueues(name);
    for (const [name, state] of states) if (state === "deleting") beingDeleted.add(name);
    for (const name of beingDeleted) {
      const state = states.get(name);
      if (state === "deleting") continue;
      beingDeleted.delete(name);
      // A worker may have written keys after DeleteEnvironment removed the queues.
      if (state === undefined && !closed) await removeQueues(name);
    }
  }

  /** Serialised: concurrent triggers queue behind the running pass. */
  function reconcile(): Promise<void> {
    pass = pass.then(reconcileOnce).catch((error: unknown) => {
      logger.warn({ err: error }, "could not reconcile environments; retrying");
    });
    return pass;
  }

  /** Never rejects: failures are logged. */
  async function beat(): Promise<void> {
    let view: FleetView;
    try {
      view = await fleet.beat(now());
    } catch (error) {
      // Redis away: keep serving what this process served; nobody else can take it meanwhile either.
      logger.debug({ err: error }, "fleet heartbeat failed");
      return;
    }
    if (closed) return;
    const changed = view.members.join("\n") !== members.join("\n");
    members = view.members;
    if (changed) {
      logger.info({ members: members.length }, "worker processes changed");
      pass = pass
        .then(() => rebalance(true))
        .catch((error: unknown) => logger.warn({ err: error }, "could not rebalance"));
      await pass;
    }
    if (view.redisLost) {
      logger.warn(
        { environments: owned.size },
        "Redis lost its data: finding the lost work of every served environment",
      );
      for (const environment of owned.keys()) {
        await deps.onRedisLost(environment).catch((error: unknown) => {
          logger.warn({ err: error, environment }, "could not ask for a sweep after Redis lost its data");
        });
      }
    }
  }

  async function pollOnce(): Promise<void> {
    const inspecting = [...toInspect.values()].slice(0, inspectBatch);
    await Promise.all(inspecting.map(({ environment, kind }) => lookAt(environment, kind)));
    const at = now();
    const due = await wakes.due(at, wakeBatch);
    const taking: Promise<boolean>[] = [];
    for (const entry of due) {
      if (closed) break;
      const parsed = parseQueueName(entry.queue);
      if (!parsed || (listed && !active.has(parsed.environment) && !beingDeleted.has(parsed.environment))) {
        // No such environment as last listed (deleted while its removal failed, say): once it has been
        // due for a while (not one created a moment ago elsewhere), whoever sees it removes it, so that
        // such entries never fill the batch every poll reads.
        if (at - entry.at > orphanEntryMs) taking.push(wakes.take(entry));
        continue;
      }
      const { environment, kind } = parsed;
      if (!listed) continue;
      if (!owned.has(environment)) continue;
      const found = live.get(entry.queue);
      // Closing: its look at the queue afterwards writes the entry back if work is left.
      if (found?.closing) continue;
      if (found) found.lastActivity = at;
      else startQueue(environment, kind);
      taking.push(wakes.take(entry));
    }
    await Promise.all(taking);
    if (closed) return;
    for (const [queue, entry] of live) {
      if (!entry.closing && entry.inFlight === 0 && at - entry.lastActivity >= deps.idleMs) {
        stopQueue(queue, entry).catch((error: unknown) => logger.warn({ err: error, queue }, "could not close"));
      }
    }
  }

  /** One poll of the wake index, unless one is running; never rejects. */
  function poll(): Promise<void> {
    if (closed) return Promise.resolve();
    polling ??= pollOnce()
      .catch((error: unknown) => logger.debug({ err: error }, "could not read the wake index"))
      .finally(() => {
        polling = undefined;
      });
    return polling;
  }

  return {
    async start(): Promise<void> {
      await beat();
      await reconcile();
      await Promise.all([...toInspect.values()].map(({ environment, kind }) => lookAt(environment, kind)));
      if (closed) return;
      timers.push(
        // reconcile and beat log their own failures.
        setInterval(reconcile, deps.reconcileMs),
        setInterval(beat, deps.beatMs),
        setInterval(poll, deps.pollMs),
      );
      await poll();
    },
    reconcile,
    /** One heartbeat now (the timer beats every `beatMs`). */
    beat,
    /** One read of the wake index now, and idle workers closed (the timer polls every `pollMs`). */
    poll,
    /** Environments this process serves now. */
    serving: () => [...owned.keys()].sort(),
    /** Queues with a worker now (for tests and metrics). */
    liveQueues: () => [...live.keys()].sort(),
    /** Stops every worker within `timeoutMs`, also when Redis is unreachable, and leaves the fleet. */
    async close(timeoutMs: number): Promise<boolean> {
      closed = true;
      for (const timer of timers) clearInterval(timer);
      // A pass in progress may be starting workers: let it settle first (a quarter of the budget at most).
      const started = now();
      await settlesWithin(Promise.all([pass, polling]), timeoutMs / 4);
      const workers = [...live.values()].map((q) => q.worker);
      live.clear();
      const left = Math.max(0, timeoutMs - (now() - started));
      const results = await Promise.all(workers.map((w) => closeWithin(w, left)));
      await settlesWithin(fleet.leave(), Math.min(1_000, left));
      return results.every(Boolean);
    },
  };
}
