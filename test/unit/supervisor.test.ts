import { describe, expect, it } from "vitest";
import type { EnvironmentState } from "../../src/domain/environments/environments.js";
import type { QueueKind } from "../../src/queue/queue-names.js";
import type { WakeEntry } from "../../src/queue/wake-index.js";
import { ownerOf } from "../../src/queue/worker-fleet.js";
import { createWorkerSupervisor, type JobActivity, type RunningWorker } from "../../workers/supervisor.js";
import { memoryLogger } from "../helpers/fakes.js";

class FakeWorker implements RunningWorker {
  readonly closeCalls: (boolean | undefined)[] = [];
  constructor(
    readonly environment: string,
    readonly kind: QueueKind,
    readonly activity: JobActivity,
    private readonly hangs: boolean,
  ) {}

  close(force?: boolean): Promise<void> {
    this.closeCalls.push(force);
    return this.hangs ? new Promise<void>(() => {}) : Promise.resolve();
  }
}

/** The wake index as a map, with the same rules: `now` always writes, `at` only brings forward, `take` if unmoved. */
function fakeWakes() {
  const entries = new Map<string, number>();
  return {
    entries,
    async due(now: number, limit: number): Promise<WakeEntry[]> {
      return [...entries]
        .filter(([, at]) => at <= now)
        .sort((a, b) => a[1] - b[1])
        .slice(0, limit)
        .map(([queue, at]) => ({ queue, at }));
    },
    async take(entry: WakeEntry): Promise<boolean> {
      if (entries.get(entry.queue) !== entry.at) return false;
      entries.delete(entry.queue);
      return true;
    },
    async at(queue: string, at: number): Promise<void> {
      entries.set(queue, Math.min(at, entries.get(queue) ?? Number.POSITIVE_INFINITY));
    },
  };
}

type Listed = { name: string; state: EnvironmentState; incarnation?: string };

/** One Redis's worth of shared state: the fleet's members and the wake index, for several supervisors. */
function sharedRedis() {
  return { members: new Set<string>(), wakes: fakeWakes(), lost: false, down: false };
}

function setup(
  options: { id?: string; redis?: ReturnType<typeof sharedRedis>; hangingWorkers?: boolean; idleMs?: number } = {},
) {
  const redis = options.redis ?? sharedRedis();
  const id = options.id ?? "w1";
  let records: Listed[] = [];
  let listFails = false;
  let time = 1_000_000;
  const workers: FakeWorker[] = [];
  const removed: string[] = [];
  const swept = new Set<string>();
  const lostSweeps: string[] = [];
  /** What nextWork answers per queue name; undefined: nothing. */
  const work = new Map<string, number>();
  const looked: string[] = [];
  const { logger } = memoryLogger();
  const supervisor = createWorkerSupervisor({
    async listEnvironments() {
      if (listFails) throw new Error("MongoDB is unreachable");
      return records.map((r) => ({ incarnation: "1", ...r }));
    },
    startWorker(environment, kind, activity) {
      const worker = new FakeWorker(environment, kind, activity, options.hangingWorkers ?? false);
      workers.push(worker);
      return worker;
    },
    async removeQueues(environment) {
      removed.push(environment);
    },
    fleet: {
      id,
      async beat() {
        if (redis.down) throw new Error("Redis is down");
        redis.members.add(id);
        const redisLost = redis.lost;
        return { members: [...redis.members].sort(), redisLost };
      },
      async leave() {
        redis.members.delete(id);
      },
    },
    wakes: redis.wakes,
    async nextWork(environment, kind) {
      const queue = `{${environment}}.${kind}`;
      looked.push(queue);
      return work.get(queue);
    },
    sweeps: {
      add: (environment) => swept.add(environment),
      remove: (environment) => swept.delete(environment),
    },
    async onRedisLost(environment) {
      lostSweeps.push(environment);
    },
    reconcileMs: 60_000,
    beatMs: 60_000,
    pollMs: 60_000,
    idleMs: options.idleMs ?? 5_000,
    logger,
    now: () => time,
  });
  return {
    supervisor,
    redis,
    workers,
    removed,
    swept,
    lostSweeps,
    work,
    looked,
    setRecords(next: Listed[]) {
      records = next;
    },
    failListing(fails: boolean) {
      listFails = fails;
    },
    advance(ms: number) {
      time += ms;
    },
    now: () => time,
    live: () => workers.filter((w) => w.closeCalls.length === 0),
  };
}

const active = (...names: string[]): Listed[] => names.map((name) => ({ name, state: "active" as const }));

describe("serving environments lazily", () => {
  it("when environments are listed, then each active one is served and swept, and no worker starts while its queues are idle", async () => {
    const t = setup();
    t.setRecords([...active("dev", "prod"), { name: "old", state: "deleting" }]);
    await t.supervisor.start();
    expect(t.supervisor.serving()).toEqual(["dev", "prod"]);
    expect([...t.swept].sort()).toEqual(["dev", "prod"]);
    expect(t.workers).toEqual([]);
    // Every queue of both was looked at once, for work left from before.
    expect(t.looked.sort()).toEqual(
      ["dev", "prod"].flatMap((e) => ["handshake", "rotation", "webhook"].map((k) => `{${e}}.${k}`)).sort(),
    );
    await t.supervisor.close(1_000);
  });

  it("when a queue is woken, then one worker starts for it, the entry is taken, and it closes once idle for idleMs", async () => {
    const t = setup({ idleMs: 5_000 });
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.handshake", t.now());
    await t.supervisor.poll();
    await t.redis.wakes.at("{dev}.handshake", t.now());
    await t.supervisor.poll();
    expect(t.workers.map((w) => `${w.environment}/${w.kind}`)).toEqual(["dev/handshake"]);
    expect(t.redis.wakes.entries.size).toBe(0);
    expect(t.supervisor.liveQueues()).toEqual(["{dev}.handshake"]);

    t.advance(4_999);
    await t.supervisor.poll();
    expect(t.live()).toHaveLength(1);
    t.advance(1);
    await t.supervisor.poll();
    await t.supervisor.poll();
    expect(t.workers[0]?.closeCalls).toEqual([undefined]);
    expect(t.supervisor.liveQueues()).toEqual([]);
    await t.supervisor.close(1_000);
  });

  it("when a worker has a job running past idleMs, then it is not closed until the job ends and idleMs more pass", async () => {
    const t = setup({ idleMs: 1_000 });
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.rotation", t.now());
    await t.supervisor.poll();
    const worker = t.workers[0];
    worker?.activity.started();
    t.advance(10_000);
    await t.supervisor.poll();
    expect(worker?.closeCalls).toEqual([]);
    worker?.activity.finished();
    t.advance(999);
    await t.supervisor.poll();
    expect(worker?.closeCalls).toEqual([]);
    t.advance(1);
    await t.supervisor.poll();
    expect(worker?.closeCalls).toEqual([undefined]);
    await t.supervisor.close(1_000);
  });

  it("when an idle worker closes and its queue still has a delayed job, then the wake index holds that job's time", async () => {
    const t = setup({ idleMs: 1_000 });
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.webhook", t.now());
    await t.supervisor.poll();
    const retryAt = t.now() + 60_000;
    t.work.set("{dev}.webhook", retryAt);
    t.advance(1_000);
    await t.supervisor.poll();
    await t.supervisor.poll();
    expect(t.redis.wakes.entries.get("{dev}.webhook")).toBe(retryAt);
    // Due: a worker starts again.
    t.advance(60_000);
    t.work.delete("{dev}.webhook");
    await t.supervisor.poll();
    expect(t.workers).toHaveLength(2);
    await t.supervisor.close(1_000);
  });

  it("when a producer signals again while the entry is being read, then the newer signal is not taken", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.handshake", t.now());
    const due = await t.redis.wakes.due(t.now(), 10);
    t.redis.wakes.entries.set("{dev}.handshake", t.now() + 1);
    expect(await t.redis.wakes.take(due[0] as WakeEntry)).toBe(false);
    expect(t.redis.wakes.entries.has("{dev}.handshake")).toBe(true);
    await t.supervisor.close(1_000);
  });

  it("when a woken queue belongs to an environment that is not served here, then no worker starts and the entry stays for its owner", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{elsewhere}.handshake", t.now());
    await t.supervisor.poll();
    expect(t.workers).toEqual([]);
    expect(t.redis.wakes.entries.has("{elsewhere}.handshake")).toBe(true);
    await t.supervisor.close(1_000);
  });
});

describe("sharing environments among worker processes", () => {
  const names = Array.from({ length: 60 }, (_, i) => `env-${i}`);

  it("when two processes run, then every environment is served by exactly one of them, as ownerOf says", async () => {
    const redis = sharedRedis();
    const a = setup({ id: "a", redis });
    const b = setup({ id: "b", redis });
    for (const t of [a, b]) t.setRecords(active(...names));
    await a.supervisor.start();
    await b.supervisor.start();
    await a.supervisor.beat();
    const servedA = a.supervisor.serving();
    const servedB = b.supervisor.serving();
    expect([...servedA, ...servedB].sort()).toEqual([...names].sort());
    expect(servedA.filter((n) => servedB.includes(n))).toEqual([]);
    for (const name of servedA) expect(ownerOf(name, ["a", "b"])).toBe("a");
    // Shared out, not all on one.
    expect(Math.min(servedA.length, servedB.length)).toBeGreaterThan(10);
    await Promise.all([a.supervisor.close(1_000), b.supervisor.close(1_000)]);
  });

  it("when one process leaves, then the other serves its environments and looks at their queues", async () => {
    const redis = sharedRedis();
    const a = setup({ id: "a", redis });
    const b = setup({ id: "b", redis });
    for (const t of [a, b]) t.setRecords(active(...names));
    await a.supervisor.start();
    await b.supervisor.start();
    await a.supervisor.beat();
    const fromB = b.supervisor.serving();
    // B's queue had a job waiting when it died: A finds it.
    const queue = `{${fromB[0]}}.handshake`;
    a.work.set(queue, a.now());
    redis.members.delete("b");
    a.looked.length = 0;
    await a.supervisor.beat();
    expect(a.supervisor.serving()).toEqual([...names].sort());
    expect(a.looked).toEqual([]);
    // Every queue it serves is looked at again (50 a poll): a member change may hide a job from anyone.
    for (let i = 0; i < 5; i++) await a.supervisor.poll();
    expect(a.looked.sort()).toEqual(
      names.flatMap((n) => ["handshake", "rotation", "webhook"].map((k) => `{${n}}.${k}`)).sort(),
    );
    expect(a.workers.map((w) => `{${w.environment}}.${w.kind}`)).toContain(queue);
    await a.supervisor.close(1_000);
  });

  it("when an environment moves while the old owner's worker runs, then the queue is looked at again once that worker closed", async () => {
    const redis = sharedRedis();
    const a = setup({ id: "a", redis, idleMs: 1_000 });
    a.setRecords(active(...names));
    await a.supervisor.start();
    // An environment that goes to B once B joins.
    const name = names.find((n) => ownerOf(n, ["a", "b"]) === "b") ?? "";
    await redis.wakes.at(`{${name}}.handshake`, a.now());
    await a.supervisor.poll();
    expect(a.supervisor.liveQueues()).toContain(`{${name}}.handshake`);
    // B joins and takes the environment; the job B's look missed is still there when A's worker closes.
    const b = setup({ id: "b", redis });
    b.setRecords(active(...names));
    await b.supervisor.start();
    a.work.set(`{${name}}.handshake`, a.now());
    await a.supervisor.beat();
    await a.supervisor.poll();
    expect(a.supervisor.serving()).not.toContain(name);
    expect(redis.wakes.entries.get(`{${name}}.handshake`)).toBe(a.now());
    await b.supervisor.poll();
    expect(b.supervisor.liveQueues()).toContain(`{${name}}.handshake`);
    await Promise.all([a.supervisor.close(1_000), b.supervisor.close(1_000)]);
  });

  it("when a due entry names an environment that is not listed, then after a minute whoever sees it removes it", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{gone}.handshake", t.now());
    t.advance(30_000);
    await t.supervisor.poll();
    expect(t.redis.wakes.entries.has("{gone}.handshake")).toBe(true);
    t.advance(31_000);
    await t.supervisor.poll();
    expect(t.redis.wakes.entries.has("{gone}.handshake")).toBe(false);
    await t.supervisor.close(1_000);
  });

  it("when Redis lost its data, then a sweep is asked for in every environment served", async () => {
    const t = setup();
    t.setRecords(active("dev", "prod"));
    await t.supervisor.start();
    t.redis.lost = true;
    await t.supervisor.beat();
    expect(t.lostSweeps.sort()).toEqual(["dev", "prod"]);
    await t.supervisor.close(1_000);
  });

  it("when the heartbeat fails (Redis down), then the process keeps serving what it served", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    t.redis.down = true;
    await t.supervisor.beat();
    expect(t.supervisor.serving()).toEqual(["dev"]);
    await t.supervisor.close(1_000);
  });
});

describe("following environments", () => {
  it("when an environment's record disappears, then its workers stop, its sweeps end and its queues are removed", async () => {
    const t = setup();
    t.setRecords(active("dev", "gone"));
    await t.supervisor.start();
    await t.redis.wakes.at("{gone}.handshake", t.now());
    await t.supervisor.poll();
    t.setRecords(active("dev"));
    await t.supervisor.reconcile();
    expect(t.supervisor.serving()).toEqual(["dev"]);
    expect(t.workers[0]?.closeCalls).toEqual([undefined]);
    expect(t.swept.has("gone")).toBe(false);
    expect(t.removed).toEqual(["gone"]);
    await t.supervisor.close(1_000);
  });

  it("when an environment turns deleting, then it is no longer served but its queues stay until the record is gone", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    t.setRecords([{ name: "dev", state: "deleting" }]);
    await t.supervisor.reconcile();
    expect(t.supervisor.serving()).toEqual([]);
    expect(t.removed).toEqual([]);
    t.setRecords([]);
    await t.supervisor.reconcile();
    expect(t.removed).toEqual(["dev"]);
    await t.supervisor.close(1_000);
  });

  it("when an environment was deleted and created again between two passes, then its workers are started afresh", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.handshake", t.now());
    await t.supervisor.poll();
    t.setRecords([{ name: "dev", state: "active", incarnation: "2" }]);
    await t.supervisor.reconcile();
    expect(t.workers[0]?.closeCalls).toEqual([undefined]);
    expect(t.supervisor.serving()).toEqual(["dev"]);
    expect(t.removed).toEqual([]);
    await t.supervisor.close(1_000);
  });

  it("when listing fails, then reconcile resolves and the next pass works", async () => {
    const t = setup();
    t.failListing(true);
    await t.supervisor.start();
    expect(t.supervisor.serving()).toEqual([]);
    t.failListing(false);
    t.setRecords(active("dev"));
    await t.supervisor.reconcile();
    expect(t.supervisor.serving()).toEqual(["dev"]);
    await t.supervisor.close(1_000);
  });
});

describe("close", () => {
  it("when a worker's close never resolves, then close gives up within its timeout after forcing, and the process leaves the fleet", async () => {
    const t = setup({ hangingWorkers: true });
    t.setRecords(active("dev"));
    await t.supervisor.start();
    await t.redis.wakes.at("{dev}.handshake", t.now());
    await t.supervisor.poll();
    const started = Date.now();
    expect(await t.supervisor.close(400)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(t.workers[0]?.closeCalls).toEqual([undefined, true]);
    expect(t.redis.members.has("w1")).toBe(false);
  });

  it("when closed, then a poll starts nothing", async () => {
    const t = setup();
    t.setRecords(active("dev"));
    await t.supervisor.start();
    expect(await t.supervisor.close(1_000)).toBe(true);
    await t.redis.wakes.at("{dev}.handshake", t.now());
    await t.supervisor.poll();
    expect(t.workers).toEqual([]);
  });
});
