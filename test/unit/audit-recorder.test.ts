import { describe, expect, it } from "vitest";
import type { AccountEvent } from "../../src/domain/accounts/accounts.js";
import type { AuditEntry } from "../../src/domain/audit/audit.js";
import { type AuditFacts, createAuditRecorder, workerAudit } from "../../src/domain/audit/audit-recorder.js";
import { createAuditService } from "../../src/domain/audit/audit-service.js";
import { auditedAccountEvents } from "../../src/domain/audit/worker-audit.js";
import { type Deferred, deferred, fakeClock, settle } from "../helpers/fakes.js";

function facts(overrides: Partial<AuditFacts> = {}): AuditFacts {
  return {
    actorKind: "admin",
    actorId: "",
    method: "roomkey.v1.TokenService/CreateToken",
    resource: "tok_1",
    requestId: "req-1",
    outcome: "OK",
    reason: "",
    peer: "10.0.0.1",
    details: {},
    ...overrides,
  };
}

/** A store whose writes the test holds open (or fails), recording each insertMany. */
function setup(
  options: {
    maxBuffered?: number;
    maxBatch?: number;
    maxBufferedPerEnvironment?: number;
    writeTimeoutMs?: number;
    exists?: (name: string) => boolean;
  } = {},
) {
  const writes: { environment: string; entries: AuditEntry[]; done: Deferred<void> }[] = [];
  const dropped: number[] = [];
  const failed: number[] = [];
  const warnings: string[] = [];
  const recorder = createAuditRecorder({
    store: {
      insertMany(environment, entries) {
        const done = deferred<void>();
        writes.push({ environment, entries: [...entries], done });
        return done.promise;
      },
    },
    exists: options.exists ?? (() => true),
    clock: fakeClock(),
    maxBuffered: options.maxBuffered ?? 100,
    maxBatch: options.maxBatch ?? 50,
    ...(options.maxBufferedPerEnvironment === undefined
      ? {}
      : { maxBufferedPerEnvironment: options.maxBufferedPerEnvironment }),
    ...(options.writeTimeoutMs === undefined ? {} : { writeTimeoutMs: options.writeTimeoutMs }),
    warn: (message) => warnings.push(message),
    observe: { dropped: (_reason, count) => dropped.push(count), writeFailed: (count) => failed.push(count) },
  });
  return { recorder, writes, dropped, failed, warnings };
}

describe("the audit recorder", () => {
  it("when calls of one environment end together, then their entries are written in one insertMany, and later ones wait for it and go together in the next", async () => {
    const { recorder, writes } = setup();
    const first = [recorder.record("staging", facts()), recorder.record("staging", facts({ resource: "tok_2" }))];
    const other = recorder.record("production", facts());
    await settle();
    expect(writes.map((w) => [w.environment, w.entries.length])).toEqual([
      ["staging", 2],
      ["production", 1],
    ]);
    // While staging's write is in flight, three more arrive: one write after it, not three.
    const later = [1, 2, 3].map((i) => recorder.record("staging", facts({ resource: `tok_${i + 2}` })));
    await settle();
    expect(writes).toHaveLength(2);
    let resolved = false;
    Promise.all(first).then(() => {
      resolved = true;
    });
    await settle();
    expect(resolved).toBe(false);
    writes[0]?.done.resolve();
    await settle();
    expect(resolved).toBe(true);
    expect(writes.map((w) => [w.environment, w.entries.length])).toEqual([
      ["staging", 2],
      ["production", 1],
      ["staging", 3],
    ]);
    writes[1]?.done.resolve();
    writes[2]?.done.resolve();
    await Promise.all([...later, other]);
  });

  it("when an entry is made, then it has an ae_ id that sorts by time and the facts it was given", async () => {
    const { recorder, writes } = setup();
    const done = recorder.record("staging", facts({ details: { from: "A" } }));
    await settle();
    writes[0]?.done.resolve();
    await done;
    const [entry] = writes[0]?.entries ?? [];
    expect(entry?.id).toMatch(/^ae_[0-9A-Za-z]{22}$/);
    expect(entry).toMatchObject({ resource: "tok_1", requestId: "req-1", details: { from: "A" } });
  });

  it("when a write fails, then the call's wait still ends, the failure is counted, and its entries are written by the next flush", async () => {
    const { recorder, writes, failed, warnings } = setup();
    const done = recorder.record("staging", facts());
    await settle();
    writes[0]?.done.reject(new Error("mongo down"));
    await expect(done).resolves.toBeUndefined();
    expect(failed).toEqual([1]);
    expect(warnings).toHaveLength(1);
    expect(recorder.bufferedCount()).toBe(1);
    const flushed = recorder.flush();
    await settle();
    expect(writes[1]?.entries.map((e) => e.id)).toEqual(writes[0]?.entries.map((e) => e.id));
    writes[1]?.done.resolve();
    await flushed;
    expect(recorder.bufferedCount()).toBe(0);
  });

  it("when an environment does not exist, then its entries are dropped unwritten (a write would create its database)", async () => {
    const { recorder, writes } = setup({ exists: (name) => name === "staging" });
    await recorder.record("made-up", facts());
    recorder.note("made-up", facts());
    await recorder.flush();
    expect(writes).toEqual([]);
  });

  it("when refusals flood in, then at most the bound is held, the rest are dropped and counted, and a flush writes them in batches", async () => {
    const { recorder, writes, dropped } = setup({ maxBuffered: 10, maxBatch: 4 });
    for (let i = 0; i < 25; i++) recorder.note("staging", facts({ requestId: `r${i}` }));
    expect(recorder.bufferedCount()).toBe(10);
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(15);
    const flushed = recorder.flush();
    for (let i = 0; i < 3; i++) {
      await settle();
      writes[i]?.done.resolve();
    }
    await flushed;
    expect(writes.map((w) => w.entries.length)).toEqual([4, 4, 2]);
    expect(writes.flatMap((w) => w.entries.map((e) => e.requestId))).toEqual(
      Array.from({ length: 10 }, (_, i) => `r${i}`),
    );
  });

  it("when one environment's refusals flood in, then they take at most its share of the buffer and another's still fit", () => {
    const { recorder, dropped } = setup({ maxBuffered: 100, maxBufferedPerEnvironment: 3 });
    const kept = [1, 2, 3, 4, 5].map((i) => recorder.note("development", facts({ requestId: `r-${i}` }), `key-${i}`));
    expect(kept).toEqual([true, true, true, false, false]);
    expect(recorder.note("production", facts(), "key-1")).toBe(true);
    expect([dropped.length, recorder.bufferedCount()]).toEqual([2, 4]);
  });

  it("when a write hangs past the write timeout, then the call's wait ends and its entry is kept for the next flush", async () => {
    const { recorder, writes, failed } = setup({ writeTimeoutMs: 20 });
    await recorder.record("staging", facts());
    expect([writes.length, failed, recorder.bufferedCount()]).toEqual([1, [1], 1]);
  });

  it("when refusals share an aggregation key, then one entry carries their count until the flush", async () => {
    const { recorder, writes } = setup();
    for (let i = 0; i < 7; i++) recorder.note("staging", facts({ actorKind: "unauthenticated" }), "10.0.0.9");
    recorder.note("staging", facts({ actorKind: "unauthenticated" }), "10.0.0.8");
    recorder.note("production", facts({ actorKind: "unauthenticated" }), "10.0.0.9");
    expect(recorder.bufferedCount()).toBe(3);
    const flushed = recorder.flush();
    for (let i = 0; i < 2; i++) {
      await settle();
      for (const write of writes) write.done.resolve();
    }
    await flushed;
    const counts = writes.flatMap((w) => w.entries.map((e) => `${w.environment}:${e.details.count}`));
    expect(counts.sort()).toEqual(["production:1", "staging:1", "staging:7"]);
    // The next interval starts a new entry.
    recorder.note("staging", facts({ actorKind: "unauthenticated" }), "10.0.0.9");
    expect(recorder.bufferedCount()).toBe(1);
  });
});

describe("the worker's audit entries", () => {
  it("when the worker publishes a status change, then it is recorded (actor WORKER, from/to) before it is published; no change, no entry", async () => {
    const recorded: { environment: string; facts: AuditFacts }[] = [];
    const published: string[] = [];
    const audit = workerAudit({
      record: async (environment, f) => {
        recorded.push({ environment, facts: f });
        expect(published).toEqual([]);
      },
    });
    const events = auditedAccountEvents(
      { publish: async (_env, event) => void published.push(event.account.id) },
      audit,
    );
    const event = (status: string, previousStatus: string) =>
      ({
        account: { id: "acc_1", status },
        previousStatus,
        eventTime: new Date(),
        handshake: { attempt: 2, startTime: new Date() },
      }) as unknown as AccountEvent;
    await events.publish("staging", event("active", "connecting"));
    await events.publish("staging", event("active", "active"));
    expect(published).toEqual(["acc_1", "acc_1"]);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      environment: "staging",
      facts: {
        actorKind: "worker",
        method: "worker/account.status",
        resource: "acc_1",
        requestId: "",
        peer: "",
        details: { from: "CONNECTING", to: "ACTIVE", handshake_attempt: "2" },
      },
    });
  });
});

describe("the audit log's retention", () => {
  it("when entries are past the environment's retention, then they are deleted in bounded batches, the newest first kept", async () => {
    const clock = fakeClock(Date.UTC(2030, 0, 10));
    const calls: { below: string; limit: number }[] = [];
    let left = 2_500;
    const service = createAuditService({
      store: {
        insertMany: async () => {},
        list: async () => [],
        async deleteOldest(_env, below, limit) {
          calls.push({ below, limit });
          const gone = Math.min(left, limit);
          left -= gone;
          return gone;
        },
      },
      retentionMs: async () => 86_400_000,
      clock,
    });
    expect(await service.enforceRetention("staging")).toEqual({ deleted: 2_500 });
    expect(calls).toHaveLength(3);
    // Below the id of one day before now: ae_ + the time in base62.
    expect(calls[0]?.below).toMatch(/^ae_[0-9A-Za-z]{8}$/);
    expect(calls.every((c) => c.below === calls[0]?.below && c.limit === 1_000)).toBe(true);
  });
});
