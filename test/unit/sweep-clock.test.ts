import { describe, expect, it } from "vitest";
import { createSweepClock, type Sweep } from "../../workers/sweep-clock.js";
import { deferred, memoryLogger, settle } from "../helpers/fakes.js";

function setup(
  sweeps: Sweep[],
  options: { concurrency?: number; incarnation?: (name: string) => string | undefined } = {},
) {
  let time = 0;
  const { logger, lines } = memoryLogger();
  const clock = createSweepClock({
    sweeps,
    incarnations: { currentIncarnation: async (name) => (options.incarnation ? options.incarnation(name) : "1") },
    concurrency: options.concurrency ?? 4,
    tickMs: 60_000,
    logger,
    now: () => time,
    // The first runs fall at the end of their window: deterministic.
    random: () => 0.999,
  });
  return {
    clock,
    lines,
    async advance(ms: number) {
      time += ms;
      // Ticks by hand: start() would tick on a real timer.
      clock.tick();
      await settle();
    },
  };
}

function recording(name: string, everyMs: number) {
  const runs: string[] = [];
  const sweep: Sweep = {
    name,
    everyMs,
    async run(environment, incarnation) {
      runs.push(`${environment}@${incarnation}`);
    },
  };
  return { sweep, runs };
}

describe("the sweep clock", () => {
  it("when an environment is added, then each sweep first runs within 5 s (or its period, if shorter) and then every period", async () => {
    const a = recording("a", 30_000);
    const b = recording("b", 2_000);
    const t = setup([a.sweep, b.sweep]);
    t.clock.add("dev");
    await t.advance(1_999);
    expect(b.runs).toEqual(["dev@1"]);
    expect(a.runs).toEqual([]);
    await t.advance(3_000);
    expect(a.runs).toEqual(["dev@1"]);
    await t.advance(2_000);
    expect(b.runs).toHaveLength(3);
    expect(a.runs).toHaveLength(1);
    await t.clock.stop(100);
  });

  it("when many environments are due, then no more than `concurrency` sweeps run at once", async () => {
    const gate = deferred<void>();
    let running = 0;
    let most = 0;
    const slow: Sweep = {
      name: "slow",
      everyMs: 1_000,
      async run() {
        running++;
        most = Math.max(most, running);
        await gate.promise;
        running--;
      },
    };
    const t = setup([slow], { concurrency: 3 });
    for (let i = 0; i < 10; i++) t.clock.add(`env-${i}`);
    await t.advance(1_000);
    expect(running).toBe(3);
    gate.resolve();
    await settle();
    await t.advance(1);
    await t.advance(1);
    await t.advance(1);
    expect(most).toBe(3);
    await t.clock.stop(100);
  });

  it("when sweeps fall behind, then the longest overdue run first, so that no environment waits for ever", async () => {
    const order: string[] = [];
    const gate = { open: deferred<void>() };
    const slow: Sweep = {
      name: "slow",
      everyMs: 1_000,
      async run(environment) {
        order.push(environment);
        await gate.open.promise;
      },
    };
    const t = setup([slow], { concurrency: 1 });
    for (const name of ["first", "second", "third"]) t.clock.add(name);
    // All due; one runs at a time, and each one done is due again at once (behind).
    for (let round = 0; round < 6; round++) {
      await t.advance(1_000);
      gate.open.resolve();
      await settle();
      gate.open = deferred<void>();
    }
    // Every environment had its turn, none twice before another once.
    expect(order.slice(0, 3).sort()).toEqual(["first", "second", "third"]);
    expect(new Set(order.slice(3, 6)).size).toBe(3);
    await t.clock.stop(100);
  });

  it("when an environment is gone or being deleted, then its sweep is skipped; when a sweep fails, then it is logged and runs again next period", async () => {
    let fails = true;
    const runs: string[] = [];
    const flaky: Sweep = {
      name: "flaky",
      everyMs: 1_000,
      async run(environment) {
        runs.push(environment);
        if (fails) throw new Error("MongoDB is unreachable");
      },
    };
    const t = setup([flaky], { incarnation: (name) => (name === "gone" ? undefined : "1") });
    t.clock.add("dev");
    t.clock.add("gone");
    await t.advance(1_000);
    expect(runs).toEqual(["dev"]);
    expect(t.lines().some((l) => l.msg === "sweep failed; it runs again at its next time")).toBe(true);
    fails = false;
    await t.advance(1_000);
    expect(runs).toEqual(["dev", "dev"]);
    t.clock.remove("dev");
    await t.advance(5_000);
    expect(runs).toEqual(["dev", "dev"]);
    await t.clock.stop(100);
  });

  it("when a sweep is run now, then it runs at once with the current incarnation and returns its result", async () => {
    const sweep: Sweep = {
      name: "count",
      everyMs: 60_000,
      run: async (environment, incarnation) => ({ environment, incarnation }),
    };
    const t = setup([sweep]);
    expect(await t.clock.runNow("dev", "count")).toEqual({ environment: "dev", incarnation: "1" });
    await expect(t.clock.runNow("dev", "none")).rejects.toThrow("no sweep named none");
    await t.clock.stop(100);
  });
});
