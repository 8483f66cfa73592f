import type { Logger } from "pino";
import { settlesWithin } from "../src/async.js";
import type { IncarnationSource } from "../src/domain/environments/environments.js";

/**
 * An environment taken on is first swept within this (a worker that died left
 * it unswept), or within `firstRunPerEnvironmentMs` per environment served if
 * that is longer, and never later than one period: hundreds taken on at once
 * (start-up) are spread out instead of queueing behind the concurrency limit
 * for many seconds.
 */
const firstRunWithinMs = 5_000;
const firstRunPerEnvironmentMs = 100;

/** A periodic sweep of one environment's data (lost jobs queued again, expiry, purges). */
export interface Sweep {
  name: string;
  everyMs: number;
  run(environment: string, incarnation: string): Promise<unknown>;
}

export interface SweepClockDeps {
  sweeps: readonly Sweep[];
  /** Each run works for the environment's incarnation current when it starts; none: it is skipped. */
  incarnations: IncarnationSource;
  /** Sweeps running at once in this process, over all environments. */
  concurrency: number;
  tickMs: number;
  logger: Logger;
  now?: () => number;
  random?: () => number;
}

export type SweepClock = ReturnType<typeof createSweepClock>;

/**
 * Runs the sweeps of the environments this worker process serves, in process:
 * they read MongoDB and touch Redis only when they find work, so an idle
 * environment costs no Redis command (as BullMQ job schedulers did: a job, and
 * a worker woken, per sweep and environment). At most `concurrency` run at
 * once, so hundreds of environments taken on together (start-up, a process
 * that died) sweep one after another, not all in the same second.
 */
export function createSweepClock(deps: SweepClockDeps) {
  const { sweeps, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  /** Next run of each environment's sweeps, by environment then sweep name. */
  const due = new Map<string, Map<string, number>>();
  const running = new Map<string, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;

  async function runOne(environment: string, sweep: Sweep): Promise<void> {
    try {
      const incarnation = await deps.incarnations.currentIncarnation(environment);
      if (incarnation !== undefined) await sweep.run(environment, incarnation);
    } catch (error) {
      logger.warn({ err: error, environment, sweep: sweep.name }, "sweep failed; it runs again at its next time");
    }
  }

  /** Starts the sweeps due, the longest overdue first: when they fall behind, none waits for ever. */
  function tick(): void {
    const free = deps.concurrency - running.size;
    if (free <= 0) return;
    const at = now();
    const ready: { environment: string; sweep: Sweep; dueAt: number }[] = [];
    for (const [environment, times] of due) {
      for (const sweep of sweeps) {
        const dueAt = times.get(sweep.name) ?? Number.POSITIVE_INFINITY;
        if (dueAt <= at && !running.has(`${environment}/${sweep.name}`)) ready.push({ environment, sweep, dueAt });
      }
    }
    ready.sort((a, b) => a.dueAt - b.dueAt);
    for (const { environment, sweep } of ready.slice(0, free)) {
      const key = `${environment}/${sweep.name}`;
      due.get(environment)?.set(sweep.name, at + sweep.everyMs);
      running.set(
        key,
        runOne(environment, sweep).finally(() => running.delete(key)),
      );
    }
  }

  return {
    /** Starts sweeping an environment; its first runs fall at random within each period. */
    add(environment: string): void {
      if (due.has(environment)) return;
      const at = now();
      const window = Math.max(firstRunWithinMs, (due.size + 1) * firstRunPerEnvironmentMs);
      const first = (s: Sweep) => at + Math.floor(random() * Math.min(s.everyMs, window));
      due.set(environment, new Map(sweeps.map((s) => [s.name, first(s)])));
    },
    remove(environment: string): void {
      due.delete(environment);
    },
    /** Runs one sweep of an environment now and returns what it found (tests, and an operator's nudge). */
    async runNow(environment: string, name: string): Promise<unknown> {
      const sweep = sweeps.find((s) => s.name === name);
      if (!sweep) throw new Error(`no sweep named ${name}`);
      const incarnation = await deps.incarnations.currentIncarnation(environment);
      if (incarnation === undefined) throw new Error(`${environment} is not an active environment`);
      return sweep.run(environment, incarnation);
    },
    environments: () => [...due.keys()],
    /** Starts the sweeps due now (the timer of `start` does this every `tickMs`). */
    tick,
    start(): void {
      timer ??= setInterval(tick, deps.tickMs);
      timer.unref();
    },
    /** Stops; sweeps running may finish within `ms`. */
    async stop(ms: number): Promise<void> {
      clearInterval(timer);
      due.clear();
      await settlesWithin(Promise.all(running.values()), ms);
    },
  };
}
