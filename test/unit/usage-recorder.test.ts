import { describe, expect, it } from "vitest";
import type { UsageWriter } from "../../src/domain/tokens/ports.js";
import { createUsageRecorder } from "../../src/domain/tokens/usage-recorder.js";
import { memoryLogger } from "../helpers/fakes.js";

class FakeWriter implements UsageWriter {
  readonly writes: { environment: string; lastUsed: Record<string, number> }[] = [];
  /** Environments whose next write fails. */
  readonly failNext = new Set<string>();

  /** While set, writes wait for it (a slow database). */
  gate: Promise<void> | undefined;
  inFlight = 0;
  maxInFlight = 0;

  async recordUsage(environment: string, lastUsed: ReadonlyMap<string, Date>): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.gate;
    } finally {
      this.inFlight--;
    }
    if (this.failNext.delete(environment)) throw new Error("MongoDB went away");
    this.writes.push({
      environment,
      lastUsed: Object.fromEntries([...lastUsed].map(([id, at]) => [id, at.getTime()])),
    });
  }
}

function setup(environments: string[] = ["staging", "production"]) {
  const writer = new FakeWriter();
  const existing = new Set(environments);
  /** Environments whose next existence check fails (the directory had to ask MongoDB, which was down). */
  const lookupFailsNext = new Set<string>();
  const { logger, lines } = memoryLogger();
  const recorder = createUsageRecorder({
    writer,
    async environmentExists(name) {
      if (lookupFailsNext.delete(name)) throw new Error("MongoDB went away");
      return existing.has(name);
    },
    logger,
  });
  return { recorder, writer, existing, lookupFailsNext, lines };
}

describe("createUsageRecorder", () => {
  it("when one token is used many times, then one write carries the latest time", async () => {
    const { recorder, writer } = setup();
    for (const at of [3_000, 1_000, 5_000, 2_000, 4_000]) recorder.record("staging", "tok_a", at);

    expect(recorder.pendingCount()).toBe(1);
    await recorder.flush();

    expect(writer.writes).toEqual([{ environment: "staging", lastUsed: { tok_a: 5_000 } }]);
    expect(recorder.pendingCount()).toBe(0);
  });

  it("when tokens of one environment are used, then they go out in one write for that environment", async () => {
    const { recorder, writer } = setup();
    recorder.record("staging", "tok_a", 1_000);
    recorder.record("staging", "tok_b", 2_000);
    recorder.record("staging", "tok_a", 3_000);

    await recorder.flush();

    expect(writer.writes).toEqual([{ environment: "staging", lastUsed: { tok_a: 3_000, tok_b: 2_000 } }]);
  });

  it("when tokens of two environments are used, then each environment is written separately with its own tokens", async () => {
    const { recorder, writer } = setup();
    recorder.record("staging", "tok_a", 1_000);
    recorder.record("production", "tok_b", 2_000);
    recorder.record("staging", "tok_c", 3_000);

    await recorder.flush();

    expect(writer.writes).toHaveLength(2);
    expect(writer.writes).toContainEqual({ environment: "staging", lastUsed: { tok_a: 1_000, tok_c: 3_000 } });
    expect(writer.writes).toContainEqual({ environment: "production", lastUsed: { tok_b: 2_000 } });
  });

  it("when the environment no longer exists, then its uses are dropped and never written", async () => {
    const { recorder, writer, existing } = setup();
    recorder.record("staging", "tok_a", 1_000);
    recorder.record("production", "tok_b", 2_000);
    existing.delete("staging");

    await recorder.flush();
    existing.add("staging");
    await recorder.flush();

    expect(writer.writes).toEqual([{ environment: "production", lastUsed: { tok_b: 2_000 } }]);
    expect(recorder.pendingCount()).toBe(0);
  });

  it("when a flush is called while one is still writing, then it waits for it and writes only what came after", async () => {
    const { recorder, writer } = setup();
    let open = () => {};
    writer.gate = new Promise((resolve) => {
      open = resolve;
    });
    recorder.record("staging", "tok_a", 1_000);
    const first = recorder.flush();
    await Promise.resolve();
    expect(recorder.busy()).toBe(true);
    recorder.record("staging", "tok_b", 2_000);
    const second = recorder.flush();

    open();
    await Promise.all([first, second]);

    expect(writer.maxInFlight).toBe(1);
    expect(writer.writes).toEqual([
      { environment: "staging", lastUsed: { tok_a: 1_000 } },
      { environment: "staging", lastUsed: { tok_b: 2_000 } },
    ]);
    expect(recorder.busy()).toBe(false);
  });

  it("when nothing was used, then flush writes nothing", async () => {
    const { recorder, writer } = setup();
    await recorder.flush();
    expect(writer.writes).toEqual([]);
  });

  it("when a write fails, then the uses are written by the next flush with the latest time, and a warning is logged", async () => {
    const { recorder, writer, lines } = setup();
    recorder.record("staging", "tok_a", 2_000);
    recorder.record("staging", "tok_b", 2_000);
    recorder.record("production", "tok_c", 2_000);
    writer.failNext.add("staging");

    await recorder.flush();

    expect(writer.writes).toEqual([{ environment: "production", lastUsed: { tok_c: 2_000 } }]);
    expect(recorder.pendingCount()).toBe(2);
    expect(lines()).toContainEqual(expect.objectContaining({ level: 40, environment: "staging" }));

    recorder.record("staging", "tok_a", 1_000);
    recorder.record("staging", "tok_b", 3_000);
    await recorder.flush();

    expect(writer.writes).toEqual([
      { environment: "production", lastUsed: { tok_c: 2_000 } },
      { environment: "staging", lastUsed: { tok_a: 2_000, tok_b: 3_000 } },
    ]);
    expect(recorder.pendingCount()).toBe(0);
  });

  // Fails today: see the report. flush() takes the whole batch out of `pending` before the loop, and a rejected
  // existence check escapes the loop, so this environment's uses and those of every environment after it are lost.
  it("when the existence check fails, then the uses are kept and written by the next flush", async () => {
    const { recorder, writer, lookupFailsNext } = setup();
    recorder.record("staging", "tok_a", 1_000);
    recorder.record("production", "tok_b", 2_000);
    lookupFailsNext.add("staging");

    await Promise.allSettled([recorder.flush()]);
    await recorder.flush();

    expect(writer.writes).toHaveLength(2);
    expect(writer.writes).toContainEqual({ environment: "staging", lastUsed: { tok_a: 1_000 } });
    expect(writer.writes).toContainEqual({ environment: "production", lastUsed: { tok_b: 2_000 } });
  });
});
