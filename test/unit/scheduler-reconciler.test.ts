import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobSchedule, SchedulerRef, SchedulerState } from "../../src/queue/job-schedulers.js";
import { createSchedulerReconciler, schedulerCheckBatch } from "../../workers/scheduler-reconciler.js";
import { type Deferred, deferred, memoryLogger, rejectionOf, settle } from "../helpers/fakes.js";

const schedules: JobSchedule[] = [
  { kind: "handshake", name: "sweep-connecting", everyMs: 30_000 },
  { kind: "rotation", name: "sweep-tokens", everyMs: 60_000 },
  { kind: "rotation", name: "sweep-accounts", everyMs: 60_000 },
];

const key = (ref: { environment: string; kind: string; name: string }) => `${ref.environment}/${ref.kind}/${ref.name}`;

/** A Redis of job schedulers in memory: what is not set is missing. */
function setup(serving: string[]) {
  const states = new Map<string, SchedulerState>();
  const inspected: SchedulerRef[][] = [];
  const upserted: string[] = [];
  const restored: string[] = [];
  const failUpsertOf = new Set<string>();
  let inspectFails = false;
  let holdInspect: Deferred<void> | undefined;
  const served = [...serving];
  const { logger, lines } = memoryLogger();
  const reconciler = createSchedulerReconciler({
    serving: () => [...served],
    schedules,
    schedulers: {
      async inspect(refs) {
        inspected.push([...refs]);
        if (inspectFails) throw new Error("Connection is closed.");
        // Read now, answered later: a held pass reports Redis as it was when it read.
        const read = refs.map((ref) => states.get(key(ref)) ?? "missing");
        if (holdInspect) await holdInspect.promise;
        return read;
      },
      async upsert(environment, schedule) {
        if (failUpsertOf.has(environment)) throw new Error("READONLY");
        upserted.push(key({ environment, ...schedule }));
        states.set(key({ environment, ...schedule }), "present");
      },
    },
    async onRestored(environment) {
      restored.push(environment);
    },
    everyMs: 1_000,
    logger,
  });
  const presentAll = (environments: string[]) => {
    for (const environment of environments) {
      for (const schedule of schedules) states.set(key({ environment, ...schedule }), "present");
    }
  };
  return {
    reconciler,
    /** A first pass, which only learns what is served (its workers create a new environment's schedulers). */
    async warmUp() {
      const result = await reconciler.reconcile();
      inspected.length = 0;
      return result;
    },
    states,
    inspected,
    upserted,
    restored,
    failUpsertOf,
    served,
    lines,
    presentAll,
    failInspect: (fails: boolean) => {
      inspectFails = fails;
    },
    holdInspect: () => {
      holdInspect = deferred();
      return holdInspect;
    },
    releaseInspect: () => {
      const held = holdInspect;
      holdInspect = undefined;
      held?.resolve();
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("scheduler reconciler", () => {
  it("when every scheduler is there, then a pass re-creates nothing and asks for no sweep", async () => {
    const t = setup(["dev", "prod"]);
    await t.warmUp();
    t.presentAll(["dev", "prod"]);

    const result = await t.reconciler.reconcile();

    expect(result).toEqual({ checked: 2, restored: [] });
    expect(t.inspected).toHaveLength(1);
    expect(t.inspected[0]?.map(key)).toEqual([
      "dev/handshake/sweep-connecting",
      "dev/rotation/sweep-tokens",
      "dev/rotation/sweep-accounts",
      "prod/handshake/sweep-connecting",
      "prod/rotation/sweep-tokens",
      "prod/rotation/sweep-accounts",
    ]);
    expect(t.upserted).toEqual([]);
    expect(t.restored).toEqual([]);
  });

  it("when Redis lost one environment's schedulers and another's stalled, then only those are re-created and each such environment gets one sweep", async () => {
    const t = setup(["dev", "staging", "prod"]);
    await t.warmUp();
    t.presentAll(["dev", "staging", "prod"]);
    for (const schedule of schedules) t.states.delete(key({ environment: "staging", ...schedule }));
    t.states.set("prod/rotation/sweep-accounts", "stalled");

    const result = await t.reconciler.reconcile();

    expect(result.restored).toEqual(["staging", "prod"]);
    expect(t.upserted).toEqual([
      "staging/handshake/sweep-connecting",
      "staging/rotation/sweep-tokens",
      "staging/rotation/sweep-accounts",
      "prod/rotation/sweep-accounts",
    ]);
    expect(t.restored).toEqual(["staging", "prod"]);
    const warning = t
      .lines()
      .find((l) => l.msg === "re-created job schedulers Redis had lost" && l.environment === "prod");
    expect(warning?.schedulers).toEqual(["rotation/sweep-accounts: stalled"]);

    // Healed: the next pass finds everything.
    expect((await t.reconciler.reconcile()).restored).toEqual([]);
    expect(t.upserted).toHaveLength(4);
  });

  it("when an environment has just started being served, then the first pass leaves it to its workers and the next one checks it", async () => {
    const t = setup(["dev"]);
    await t.warmUp();
    t.presentAll(["dev"]);
    t.served.push("new");

    const first = await t.reconciler.reconcile();
    expect(first).toEqual({ checked: 1, restored: [] });
    expect(t.inspected.flat().map((ref) => ref.environment)).not.toContain("new");

    const second = await t.reconciler.reconcile();
    expect(second).toEqual({ checked: 2, restored: ["new"] });
    expect(t.restored).toEqual(["new"]);
  });

  it("when hundreds of environments are served, then a pass inspects them in a few batched round trips", async () => {
    const environments = Array.from({ length: 400 }, (_, i) => `env-${i}`);
    const t = setup(environments);
    await t.warmUp();
    t.presentAll(environments);

    await t.reconciler.reconcile();

    expect(t.inspected).toHaveLength(Math.ceil(400 / schedulerCheckBatch));
    expect(Math.max(...t.inspected.map((refs) => refs.length))).toBe(schedulerCheckBatch * schedules.length);
    expect(t.inspected.flat().map(key)).toHaveLength(400 * schedules.length);
  });

  it("when an environment stops being served before its schedulers are re-created, then they are left alone", async () => {
    const t = setup(["dev", "gone"]);
    await t.warmUp();
    t.presentAll(["dev"]);
    t.holdInspect();
    const pass = t.reconciler.reconcile();
    await settle();
    t.served.splice(t.served.indexOf("gone"), 1);
    t.releaseInspect();

    expect((await pass).restored).toEqual([]);
    expect(t.upserted).toEqual([]);
  });

  it("when re-creating one environment's schedulers fails, then the others are still restored and the next pass retries it", async () => {
    const t = setup(["dev", "prod"]);
    await t.warmUp();
    t.failUpsertOf.add("dev");

    const first = await t.reconciler.reconcile();
    expect(first.restored).toEqual(["prod"]);
    expect(t.restored).toEqual(["prod"]);
    expect(t.lines().some((l) => l.msg === "could not re-create job schedulers; retrying")).toBe(true);

    t.failUpsertOf.clear();
    const second = await t.reconciler.reconcile();
    expect(second.restored).toEqual(["dev"]);
    expect(t.restored).toEqual(["prod", "dev"]);
  });

  it("when the sweep cannot be asked for, then the schedulers stay re-created and the pass succeeds", async () => {
    const { logger, lines } = memoryLogger();
    const upserted: string[] = [];
    const reconciler = createSchedulerReconciler({
      serving: () => ["dev"],
      schedules,
      schedulers: {
        inspect: async (refs) => refs.map(() => "missing"),
        upsert: async (environment, schedule) => {
          upserted.push(key({ environment, ...schedule }));
        },
      },
      onRestored: async () => {
        throw new Error("Redis is unavailable");
      },
      everyMs: 1_000,
      logger,
    });

    await reconciler.reconcile();
    expect((await reconciler.reconcile()).restored).toEqual(["dev"]);
    expect(upserted).toHaveLength(3);
    expect(lines().some((l) => l.msg === "could not ask for a sweep after re-creating schedulers")).toBe(true);
  });

  it("when Redis cannot be read, then the pass rejects and re-creates nothing", async () => {
    const t = setup(["dev"]);
    await t.warmUp();
    t.failInspect(true);

    const error = await rejectionOf(t.reconciler.reconcile());

    expect((error as Error).message).toBe("Connection is closed.");
    expect(t.upserted).toEqual([]);
    expect(t.restored).toEqual([]);
  });

  it("when checks are asked for during a pass, then one more pass follows it, never overlapping, and they share it", async () => {
    const t = setup(["dev"]);
    await t.warmUp();
    t.presentAll(["dev"]);
    t.holdInspect();
    const first = t.reconciler.reconcile();
    await settle();
    // Lost while the first pass was reading: the pass after it must see it.
    for (const schedule of schedules) t.states.delete(key({ environment: "dev", ...schedule }));
    const second = t.reconciler.reconcile();
    const third = t.reconciler.reconcile();
    expect(third).toBe(second);
    expect(t.inspected).toHaveLength(1);

    t.releaseInspect();
    expect((await first).restored).toEqual([]);
    expect((await second).restored).toEqual(["dev"]);
    expect(t.inspected).toHaveLength(2);
    expect(t.restored).toEqual(["dev"]);
  });

  it("when started, then it checks every interval until stopped", async () => {
    vi.useFakeTimers();
    const t = setup(["dev"]);
    await t.warmUp();
    t.presentAll(["dev"]);
    t.reconciler.start();

    await vi.advanceTimersByTimeAsync(3_500);
    expect(t.inspected).toHaveLength(3);

    // A FLUSHALL without a disconnect: only the periodic check sees it.
    t.states.clear();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(t.restored).toEqual(["dev"]);

    await t.reconciler.stop();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(t.inspected).toHaveLength(4);
  });

  it("when a periodic check fails, then the next one still runs", async () => {
    vi.useFakeTimers();
    const t = setup(["dev"]);
    await t.warmUp();
    t.failInspect(true);
    t.reconciler.start();
    await vi.advanceTimersByTimeAsync(1_000);
    t.failInspect(false);
    await vi.advanceTimersByTimeAsync(1_000);

    expect(t.inspected).toHaveLength(2);
    expect(t.restored).toEqual(["dev"]);
    await t.reconciler.stop();
  });
});
