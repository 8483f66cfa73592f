import { afterEach, describe, expect, it, vi } from "vitest";
import type { EnvironmentState } from "../../src/domain/environments/environments.js";
import type { QueueKind } from "../../src/queue/queue-names.js";
import { queueKinds } from "../../src/queue/queue-names.js";
import { createWorkerSupervisor, type RunningWorker } from "../../workers/supervisor.js";
import { type Deferred, deferred, memoryLogger, settle } from "../helpers/fakes.js";

/** Workers per environment: one per queue kind. */
const kinds = queueKinds.length;

class FakeWorker implements RunningWorker {
  readonly closeCalls: (boolean | undefined)[] = [];
  constructor(
    readonly environment: string,
    readonly kind: QueueKind,
    private readonly hangs: boolean,
  ) {}

  close(force?: boolean): Promise<void> {
    this.closeCalls.push(force);
    return this.hangs ? new Promise<void>(() => {}) : Promise.resolve();
  }
}

/** A record as the supervisor lists it; without an incarnation, every test record is incarnation "1". */
type Listed = { name: string; state: EnvironmentState; incarnation?: string };

function setup(options: { hangingWorkers?: boolean; reconcileMs?: number } = {}) {
  let records: Listed[] = [];
  let pendingList: Deferred<Listed[]> | undefined;
  let listCalls = 0;
  const workers: FakeWorker[] = [];
  const removed: string[] = [];
  const { logger } = memoryLogger();
  const supervisor = createWorkerSupervisor({
    async listEnvironments() {
      listCalls++;
      const listed = pendingList ? await pendingList.promise : records;
      return listed.map((r) => ({ incarnation: "1", ...r }));
    },
    startWorker(environment, kind) {
      const worker = new FakeWorker(environment, kind, options.hangingWorkers ?? false);
      workers.push(worker);
      return worker;
    },
    async removeQueues(environment) {
      removed.push(environment);
    },
    reconcileMs: options.reconcileMs ?? 60_000,
    logger,
  });
  return {
    supervisor,
    workers,
    removed,
    setRecords(next: Listed[]) {
      records = next;
    },
    listCalls: () => listCalls,
    holdList() {
      pendingList = deferred();
      return pendingList;
    },
    releaseList() {
      pendingList = undefined;
    },
  };
}

const started = (workers: FakeWorker[]) => workers.map((w) => `${w.environment}:${w.kind}`);
const openWorkers = (workers: FakeWorker[]) => workers.filter((w) => w.closeCalls.length === 0);

afterEach(() => {
  vi.useRealTimers();
});

describe("reconcile", () => {
  it("when environments are listed, then each active one gets a handshake, a rotation and a webhook worker", async () => {
    const { supervisor, workers, setRecords } = setup();
    setRecords([
      { name: "env-a", state: "active" },
      { name: "env-b", state: "active" },
      { name: "env-c", state: "creating" },
      { name: "env-d", state: "deleting" },
    ]);

    await supervisor.reconcile();

    expect(started(workers)).toEqual([
      "env-a:handshake",
      "env-a:rotation",
      "env-a:webhook",
      "env-b:handshake",
      "env-b:rotation",
      "env-b:webhook",
    ]);
    expect(supervisor.serving()).toEqual(["env-a", "env-b"]);
  });

  it("when reconciled again with nothing changed, then no worker is started twice", async () => {
    const { supervisor, workers, setRecords } = setup();
    setRecords([{ name: "env-a", state: "active" }]);

    await supervisor.reconcile();
    await supervisor.reconcile();

    expect(workers).toHaveLength(kinds);
    expect(openWorkers(workers)).toHaveLength(kinds);
  });

  it("when an environment's record disappears, then its workers stop and its queues are removed", async () => {
    const { supervisor, workers, removed, setRecords } = setup();
    setRecords([
      { name: "env-a", state: "active" },
      { name: "env-b", state: "active" },
    ]);
    await supervisor.reconcile();

    setRecords([{ name: "env-b", state: "active" }]);
    await supervisor.reconcile();

    expect(workers.filter((w) => w.environment === "env-a").every((w) => w.closeCalls.length > 0)).toBe(true);
    expect(openWorkers(workers).map((w) => w.environment)).toEqual(["env-b", "env-b", "env-b"]);
    expect(removed).toEqual(["env-a"]);
    expect(supervisor.serving()).toEqual(["env-b"]);
  });

  it("when an environment turns deleting, then its workers stop but its queues stay until the record is gone", async () => {
    const { supervisor, workers, removed, setRecords } = setup();
    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();

    setRecords([{ name: "env-a", state: "deleting" }]);
    await supervisor.reconcile();

    expect(openWorkers(workers)).toEqual([]);
    expect(supervisor.serving()).toEqual([]);
    expect(removed).toEqual([]);

    await supervisor.reconcile();
    expect(removed).toEqual([]);

    setRecords([]);
    await supervisor.reconcile();
    expect(removed).toEqual(["env-a"]);

    await supervisor.reconcile();
    expect(removed).toEqual(["env-a"]);
  });

  it("when a deleting environment rolls back to active, then it is served again and its queues are kept", async () => {
    const { supervisor, workers, removed, setRecords } = setup();
    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();
    setRecords([{ name: "env-a", state: "deleting" }]);
    await supervisor.reconcile();

    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();
    setRecords([]);
    await supervisor.reconcile();

    expect(workers).toHaveLength(2 * kinds);
    expect(removed).toEqual(["env-a"]);
  });

  it("when an environment was deleted and created again between two passes, then its workers are started afresh and its queues kept", async () => {
    const { supervisor, workers, removed, setRecords } = setup();
    setRecords([
      { name: "env-a", state: "active", incarnation: "1000" },
      { name: "env-b", state: "active", incarnation: "1000" },
    ]);
    await supervisor.reconcile();

    setRecords([
      { name: "env-a", state: "active", incarnation: "2000" },
      { name: "env-b", state: "active", incarnation: "1000" },
    ]);
    await supervisor.reconcile();

    const ofA = workers.filter((w) => w.environment === "env-a");
    expect(ofA).toHaveLength(2 * kinds);
    expect(ofA.slice(0, kinds).every((w) => w.closeCalls.length > 0)).toBe(true);
    expect(openWorkers(workers).map((w) => `${w.environment}:${w.kind}`)).toEqual([
      "env-b:handshake",
      "env-b:rotation",
      "env-b:webhook",
      "env-a:handshake",
      "env-a:rotation",
      "env-a:webhook",
    ]);
    // The queues belong to the new incarnation now.
    expect(removed).toEqual([]);
    expect(supervisor.serving()).toEqual(["env-a", "env-b"]);

    await supervisor.reconcile();
    expect(workers).toHaveLength(3 * kinds);
  });

  it("when listing fails, then reconcile resolves and the next pass works", async () => {
    const { supervisor, workers, setRecords, holdList, releaseList } = setup();
    const held = holdList();
    const failing = supervisor.reconcile();
    held.reject(new Error("MongoDB unreachable"));
    await expect(failing).resolves.toBeUndefined();
    expect(workers).toEqual([]);

    releaseList();
    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();
    expect(supervisor.serving()).toEqual(["env-a"]);
  });
});

describe("close", () => {
  it("when every worker closes, then close resolves true and each worker was closed gracefully", async () => {
    const { supervisor, workers, setRecords } = setup();
    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();

    expect(await supervisor.close(1_000)).toBe(true);
    expect(workers.map((w) => w.closeCalls)).toEqual(Array.from({ length: kinds }, () => [undefined]));
    expect(supervisor.serving()).toEqual([]);
  });

  it("when a worker's close never resolves, then close gives up within its timeout after forcing", async () => {
    vi.useFakeTimers();
    const { supervisor, workers, setRecords } = setup({ hangingWorkers: true });
    setRecords([{ name: "env-a", state: "active" }]);
    await supervisor.reconcile();

    let result: boolean | undefined;
    const closing = supervisor.close(1_000).then((r) => {
      result = r;
    });

    await vi.advanceTimersByTimeAsync(499);
    expect(result).toBeUndefined();
    expect(workers.map((w) => w.closeCalls)).toEqual(Array.from({ length: kinds }, () => [undefined]));

    await vi.advanceTimersByTimeAsync(1);
    expect(workers.map((w) => w.closeCalls)).toEqual(Array.from({ length: kinds }, () => [undefined, true]));

    await vi.advanceTimersByTimeAsync(500);
    await closing;
    expect(result).toBe(false);
  });

  it("when closed after start, then no further reconcile runs", async () => {
    vi.useFakeTimers();
    const { supervisor, workers, setRecords } = setup({ reconcileMs: 1_000 });
    await supervisor.start();
    await supervisor.close(100);

    setRecords([{ name: "env-a", state: "active" }]);
    await vi.advanceTimersByTimeAsync(5_000);

    expect(workers).toEqual([]);
  });

  it("when started, then a new environment is picked up on the next scheduled pass", async () => {
    vi.useFakeTimers();
    const { supervisor, workers, setRecords } = setup({ reconcileMs: 1_000 });
    await supervisor.start();
    setRecords([{ name: "env-a", state: "active" }]);

    await vi.advanceTimersByTimeAsync(1_000);

    expect(started(workers)).toEqual(["env-a:handshake", "env-a:rotation", "env-a:webhook"]);
    await supervisor.close(100);
  });

  // Known bug: reconcileOnce checks `closed` only before listEnvironments, and
  // close() does not wait for the running pass, so a pass in flight starts
  // workers after close() has returned; nobody ever closes them.
  it("when close is called while a reconcile pass is listing, then no worker is left running", async () => {
    const { supervisor, workers, setRecords, holdList, listCalls } = setup();
    setRecords([]);
    const held = holdList();
    const pass = supervisor.reconcile();
    await settle();
    expect(listCalls()).toBe(1);

    expect(await supervisor.close(1_000)).toBe(true);
    held.resolve([{ name: "env-a", state: "active" }]);
    await pass;

    expect(supervisor.serving()).toEqual([]);
    expect(openWorkers(workers)).toEqual([]);
  });
});
