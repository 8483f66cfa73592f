import { describe, expect, it } from "vitest";
import { createFailureThrottle, peerKey } from "../../src/rpc/failure-throttle.js";

function throttle(options: { perMinute?: number; burst?: number; maxPeers?: number } = {}) {
  let now = 0;
  const t = createFailureThrottle({
    perMinute: options.perMinute ?? 60,
    burst: options.burst ?? 3,
    maxPeers: options.maxPeers ?? 100,
    now: () => now,
  });
  return { t, advance: (ms: number) => (now += ms) };
}

describe("the failed-authentication throttle", () => {
  it("when a peer fails as often as its burst, then it is throttled, and freed as tokens come back", () => {
    const { t, advance } = throttle({ perMinute: 60, burst: 3 });
    for (let i = 0; i < 3; i++) {
      expect(t.blockedFor("10.0.0.1")).toBeUndefined();
      t.fail("10.0.0.1");
    }
    expect(t.blockedFor("10.0.0.1")).toBe(1);
    expect(t.blockedFor("10.0.0.2")).toBeUndefined();
    advance(999);
    expect(t.blockedFor("10.0.0.1")).toBe(1);
    advance(1);
    expect(t.blockedFor("10.0.0.1")).toBeUndefined();
    t.fail("10.0.0.1");
    expect(t.blockedFor("10.0.0.1")).toBe(1);
  });

  it("when a throttled peer keeps failing, then it waits no longer than the rate says", () => {
    const { t, advance } = throttle({ perMinute: 6, burst: 1 });
    t.fail("p");
    for (let i = 0; i < 10; i++) t.fail("p");
    expect(t.blockedFor("p")).toBe(10);
    advance(10_000);
    expect(t.blockedFor("p")).toBeUndefined();
  });

  it("when a bucket is full again, then the peer is forgotten", () => {
    const { t, advance } = throttle({ perMinute: 60, burst: 3 });
    t.fail("p");
    expect(t.peers()).toBe(1);
    advance(1_000);
    t.blockedFor("p");
    expect(t.peers()).toBe(0);
  });

  it("when more peers fail than it remembers, then the oldest is forgotten first", () => {
    const { t } = throttle({ burst: 1, maxPeers: 2 });
    for (const peer of ["a", "b", "c"]) t.fail(peer);
    expect(t.peers()).toBe(2);
    expect(t.blockedFor("a")).toBeUndefined();
    expect(t.blockedFor("c")).toBe(1);
  });

  it("when the rate is 0, then nothing is throttled or remembered", () => {
    const { t } = throttle({ perMinute: 0 });
    for (let i = 0; i < 100; i++) t.fail("p");
    expect(t.enabled).toBe(false);
    expect(t.blockedFor("p")).toBeUndefined();
    expect(t.peers()).toBe(0);
  });
});

describe("peer keys", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("when the address is %s, then the peer is %s", (address, key) => {
    expect(peerKey(address)).toBe(key);
  });

  it("when there is no address, then there is no peer (and no throttle)", () => {
    expect(peerKey(undefined)).toBeUndefined();
  });
});

describe("checks in flight", () => {
  it("when checks take tokens, then no more run at once than the burst, and successes give theirs back", () => {
    const { t } = throttle({ perMinute: 60, burst: 3 });
    expect([t.take("p"), t.take("p"), t.take("p"), t.take("p")]).toEqual([true, true, true, false]);
    t.refund("p");
    expect(t.take("p")).toBe(true);
    expect(t.take("p")).toBe(false);
  });

  it("when a remembered peer is used, then it is the last to be forgotten", () => {
    const { t } = throttle({ burst: 1, maxPeers: 2 });
    t.fail("a");
    t.fail("b");
    t.blockedFor("a");
    t.fail("c");
    expect(t.blockedFor("a")).toBe(1);
    expect(t.blockedFor("b")).toBeUndefined();
  });
});
