import { describe, expect, it } from "vitest";
import { providerBackoffCapMs, providerBackoffJitter, providerBackoffMs } from "../../src/queue/retry-policy.js";

describe("the provider backoff", () => {
  it("when the provider said Retry-After, then the next attempt waits exactly that long", () => {
    expect(providerBackoffMs(3, 12_000, 1_000)).toBe(12_000);
  });

  it("when it did not, then the wait doubles from the base per attempt, within the jitter, up to the cap", () => {
    for (const [attemptsMade, expected] of [
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
      [7, 60_000],
      [20, providerBackoffCapMs],
    ] as const) {
      for (let i = 0; i < 50; i++) {
        const wait = providerBackoffMs(attemptsMade, undefined, 1_000);
        expect(wait).toBeGreaterThanOrEqual(Math.floor(expected * (1 - providerBackoffJitter)));
        expect(wait).toBeLessThanOrEqual(Math.ceil(expected * (1 + providerBackoffJitter)));
      }
    }
  });
});
