import { describe, expect, it } from "vitest";
import { createHealthMonitor } from "../../src/health/health-monitor.js";
import { settle } from "../helpers/fakes.js";

/** A monitor of one probe the test switches on and off, a clock it moves, and the lines logged at each level. */
function setup() {
  let now = 0;
  let up = false;
  const lines: { level: "warn" | "info" | "debug"; msg: string }[] = [];
  const record = (level: "warn" | "info" | "debug") => (_details: unknown, msg?: string) => {
    lines.push({ level, msg: msg ?? "" });
  };
  const monitor = createHealthMonitor({
    health: { setStatus: () => undefined },
    services: [],
    probes: [{ name: "mongodb", check: async () => (up ? undefined : Promise.reject(new Error("refused"))) }],
    intervalMs: 5,
    timeoutMs: 1_000,
    logger: { warn: record("warn"), info: record("info"), debug: record("debug") },
    startupGraceMs: 10_000,
    now: () => now,
  });
  /** Lets the monitor probe a few more times. */
  const probes = async () => {
    await new Promise((resolve) => setTimeout(resolve, 30));
    await settle();
  };
  return {
    monitor,
    lines,
    warnings: () => lines.filter((line) => line.level === "warn").map((line) => line.msg),
    set: (answers: boolean) => {
      up = answers;
    },
    advance: (ms: number) => {
      now += ms;
    },
    probes,
  };
}

describe("the health monitor's logging", () => {
  it("when a backend has not answered yet at start-up, then it is a debug line until the grace ends, then one warning", async () => {
    const t = setup();
    await t.monitor.start();
    await t.probes();
    expect(t.warnings()).toEqual([]);
    expect(t.lines.filter((line) => line.level === "debug")).toHaveLength(1);

    t.advance(10_000);
    await t.probes();
    expect(t.warnings()).toEqual(["backend still unreachable since start-up"]);

    t.set(true);
    await t.probes();
    expect(t.lines.map((line) => line.msg)).toContain("backend answers again");
    t.monitor.markStopping();
  });

  it("when a backend that answered stops answering, then it is a warning at once, however soon after start-up", async () => {
    const t = setup();
    t.set(true);
    await t.monitor.start();
    await t.probes();
    t.set(false);
    await t.probes();
    expect(t.warnings()).toEqual(["backend unreachable"]);
    t.monitor.markStopping();
  });
});
