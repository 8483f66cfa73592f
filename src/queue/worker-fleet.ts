import { createHash, randomBytes } from "node:crypto";
import type { RedisClient } from "./redis-client.js";

/** What one heartbeat learnt. */
export interface FleetView {
  /** Worker processes alive now (their lease not expired), this one included; sorted. */
  members: string[];
  /** Redis lost its data since the previous heartbeat (restarted empty, failed over, flushed). */
  redisLost: boolean;
}

export type WorkerFleet = ReturnType<typeof createWorkerFleet>;

/**
 * The worker processes sharing one deployment, and which of them serves each
 * environment. Each process renews a lease in one sorted set (member: its id,
 * score: when it last beat); the live members are those that beat within the
 * lease. Environments are shared out by rendezvous hashing (`ownerOf`): every
 * process computes the same owner from the same members with no coordination,
 * and when a process joins or dies only the environments it gains or held
 * move. Two processes that disagree for a moment (one saw a member the other
 * did not yet) both serve an environment briefly, which BullMQ's job locks
 * make safe.
 *
 * The same heartbeat tells whether Redis lost its data: an epoch key is set if
 * absent, each time with a new random value, so a value that changed between
 * two beats means the key was created again.
 */
export function createWorkerFleet(deps: { redis: RedisClient; prefix: string; id: string; leaseMs: number }) {
  const { redis, id, leaseMs } = deps;
  const membersKey = `${deps.prefix}:{fleet}:workers`;
  const epochKey = `${deps.prefix}:{fleet}:epoch`;
  let epoch: string | undefined;

  return {
    id,
    /** Renews this process's lease and reads the members; both keys share a slot, so it is one MULTI on a cluster too. */
    async beat(now: number): Promise<FleetView> {
      const replies = await redis
        .multi()
        .zadd(membersKey, now, id)
        // Long gone members are removed; a member slightly past its lease is only not counted.
        .zremrangebyscore(membersKey, "-inf", now - 10 * leaseMs)
        .zrangebyscore(membersKey, now - leaseMs, "+inf")
        .set(epochKey, randomBytes(12).toString("base64url"), "NX")
        .get(epochKey)
        .exec();
      if (!replies) throw new Error("the fleet heartbeat was discarded");
      for (const [error] of replies) if (error) throw error;
      const listed = replies[2]?.[1];
      const members = Array.isArray(listed) ? listed.filter((m): m is string => typeof m === "string") : [];
      if (!members.includes(id)) members.push(id);
      const read = replies[4]?.[1];
      const current = typeof read === "string" ? read : undefined;
      const redisLost = epoch !== undefined && current !== epoch;
      epoch = current;
      return { members: members.sort(), redisLost };
    },
    /** Gives up the lease at shutdown: the others take this process's environments at their next beat. */
    async leave(): Promise<void> {
      await redis.zrem(membersKey, id);
    },
  };
}

/** A new worker process's id: unique, and readable in logs. */
export function newWorkerId(): string {
  return `${process.pid}-${randomBytes(6).toString("base64url")}`;
}

function weight(member: string, environment: string): number {
  return createHash("sha256").update(member).update("\n").update(environment).digest().readUIntBE(0, 6);
}

/** The member that serves `environment`: the one whose hash with it is highest (rendezvous hashing). */
export function ownerOf(environment: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const member of members) {
    const w = weight(member, environment);
    if (w > bestWeight || (w === bestWeight && best !== undefined && member < best)) {
      best = member;
      bestWeight = w;
    }
  }
  return best;
}
