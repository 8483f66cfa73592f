import { describe, expect, it } from "vitest";
import { parseClusterNode } from "../../src/queue/redis-client.js";
import { ownerOf } from "../../src/queue/worker-fleet.js";

const environments = Array.from({ length: 300 }, (_, i) => `env-${i}`);

function shares(members: string[]): Map<string, string[]> {
  const owned = new Map<string, string[]>(members.map((m) => [m, []]));
  for (const environment of environments) owned.get(ownerOf(environment, members) ?? "")?.push(environment);
  return owned;
}

describe("which worker process serves an environment (rendezvous hashing)", () => {
  it("when three processes share 300 environments, then each serves a fair share, whatever order the members are listed in", () => {
    const members = ["w-a", "w-b", "w-c"];
    const owned = shares(members);
    for (const list of owned.values()) expect(list.length).toBeGreaterThan(70);
    for (const environment of environments) {
      expect(ownerOf(environment, [...members].reverse())).toBe(ownerOf(environment, members));
    }
  });

  it("when one process leaves, then only its environments move, spread over the others", () => {
    const before = shares(["w-a", "w-b", "w-c"]);
    const after = shares(["w-a", "w-c"]);
    for (const member of ["w-a", "w-c"]) {
      for (const environment of before.get(member) ?? []) expect(after.get(member)).toContain(environment);
    }
    const moved = before.get("w-b") ?? [];
    expect(moved.filter((e) => after.get("w-a")?.includes(e)).length).toBeGreaterThan(20);
    expect(moved.filter((e) => after.get("w-c")?.includes(e)).length).toBeGreaterThan(20);
  });

  it("when a process joins, then it takes environments only from the others, about a fair share", () => {
    const before = shares(["w-a", "w-b"]);
    const after = shares(["w-a", "w-b", "w-new"]);
    const taken = after.get("w-new") ?? [];
    expect(taken.length).toBeGreaterThan(70);
    for (const member of ["w-a", "w-b"]) {
      for (const environment of after.get(member) ?? []) expect(before.get(member)).toContain(environment);
    }
  });

  it("when there are no members, then nobody serves", () => {
    expect(ownerOf("dev", [])).toBeUndefined();
  });
});

describe("REDIS_CLUSTER_NODES entries", () => {
  it("when a node is host:port, [ipv6]:port or a name, then it is read; anything else is refused", () => {
    expect(parseClusterNode("redis-1:6379")).toEqual({ host: "redis-1", port: 6379 });
    expect(parseClusterNode("10.0.0.5:7000")).toEqual({ host: "10.0.0.5", port: 7000 });
    expect(parseClusterNode("[::1]:7001")).toEqual({ host: "::1", port: 7001 });
    for (const bad of ["redis-1", "redis-1:0", "redis-1:70000", "redis://redis-1:6379", ":6379", "a b:1"]) {
      expect(parseClusterNode(bad), bad).toBeUndefined();
    }
  });
});
