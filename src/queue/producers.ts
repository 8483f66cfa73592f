import type { Logger } from "pino";
import type { HandshakeQueue, RefreshQueue, RevocationQueue } from "../domain/accounts/ports.js";
import type { Clock } from "../domain/clock.js";
import type { RewrapQueue } from "../domain/environments/ports.js";
import type { RetirementScheduler } from "../domain/tokens/ports.js";
import type { WebhookQueue } from "../domain/webhooks/ports.js";
import type { JobProducer } from "./job-producer.js";
import { createMissedHandshakes } from "./missed-handshakes.js";
import { handshakeJobId, refreshJobId, revokeJobId, rewrapJobId } from "./queue-names.js";
import type { QueueRegistry } from "./queue-registry.js";
import {
  deliverJobOptions,
  handshakeJobOptions,
  refreshJobOptions,
  retireTokenJobOptions,
  revocationJobOptions,
  rewrapJobOptions,
  sweepRequestJobOptions,
} from "./retry-policy.js";

export interface ProducerDeps {
  queues: Pick<QueueRegistry, "assertReachable" | "queue">;
  jobs: JobProducer;
  /** The connection whose `ready` says Redis takes commands again. */
  redis: { on(event: "ready", listener: () => void): unknown; off(event: "ready", listener: () => void): unknown };
  /** The incarnation a job is bound to: the caller's (a job queueing more work), else the environment's current one. */
  incarnationFor(environment: string, given?: string): Promise<string>;
  clock: Clock;
  logger: Logger;
}

/**
 * The queues behind the domain's ports: handshakes, refreshes, upstream
 * revocations, token retirements, and a one-off connecting sweep. BullMQ would wait for a Redis
 * that is down, so each producer fails at once instead; the sweeps queue what
 * was refused once Redis is back. `stop` detaches from the connection.
 */
export function createProducers({ queues, jobs, redis, incarnationFor, clock, logger }: ProducerDeps) {
  /** A one-off connecting sweep without grace, once Redis is back after losing or refusing handshakes. */
  async function requestConnectingSweep(environment: string): Promise<void> {
    queues.assertReachable();
    await jobs.add(environment, "handshake", "sweep-connecting", { noGrace: true }, sweepRequestJobOptions);
  }
  const missedHandshakes = createMissedHandshakes({ requestSweep: requestConnectingSweep, logger });
  const flushMissed = () => missedHandshakes.flush();
  redis.on("ready", flushMissed);

  const handshakes: HandshakeQueue = {
    async enqueue(environment, accountId, attempt, incarnation) {
      try {
        queues.assertReachable();
        await jobs.add(
          environment,
          "handshake",
          "connect",
          { accountId, attempt, incarnation: await incarnationFor(environment, incarnation) },
          { ...handshakeJobOptions, jobId: handshakeJobId(accountId, attempt) },
        );
      } catch (error) {
        missedHandshakes.missed(environment);
        throw error;
      }
      // Redis takes jobs again, also when it never said "ready" in between (a command that failed on its own).
      if (missedHandshakes.pending()) flushMissed();
    },
  };

  const refreshes: RefreshQueue = {
    async request(environment, requests, given) {
      queues.assertReachable();
      const incarnation = await incarnationFor(environment, given);
      // Removed when done, so that the job id only holds back refreshes while one is queued or running.
      await jobs.addBulk(
        environment,
        "rotation",
        "refresh-account",
        requests.map(({ accountId, seenVersion }) => ({
          data: { accountId, seenVersion, incarnation },
          options: { ...refreshJobOptions, jobId: refreshJobId(accountId) },
        })),
      );
    },
  };

  // DeleteAccount only warns when this throws: the account sweep queues pending revocations again.
  const revocations: RevocationQueue = {
    async enqueue(environment, accountId, given) {
      queues.assertReachable();
      await jobs.add(
        environment,
        "rotation",
        "revoke-account",
        { accountId, incarnation: await incarnationFor(environment, given) },
        { ...revocationJobOptions, jobId: revokeJobId(accountId) },
      );
    },
  };

  const rewraps: RewrapQueue = {
    async request(environment, incarnation, currentFingerprint) {
      queues.assertReachable();
      await jobs.add(
        environment,
        "rotation",
        "rewrap-data-key",
        { to: currentFingerprint, incarnation },
        { ...rewrapJobOptions, jobId: rewrapJobId(currentFingerprint) },
      );
    },
  };

  const retirements: RetirementScheduler = {
    async retireAt(environment, tokenId, at) {
      // The token sweep retires what could not be queued.
      queues.assertReachable();
      await jobs.add(
        environment,
        "rotation",
        "retire-token",
        { tokenId, incarnation: await incarnationFor(environment) },
        {
          ...retireTokenJobOptions,
          delay: Math.max(0, at.getTime() - clock.now().getTime()),
          jobId: `retire-${tokenId}`,
        },
      );
    },
  };

  // What the sweep of the webhook queue finds in MongoDB it queues again: jobs are never the only record.
  const webhooks: WebhookQueue = {
    async requeue(environment, deliveries) {
      queues.assertReachable();
      const queue = queues.queue(environment, "webhook");
      const states = await Promise.all(deliveries.map((d) => queue.getJobState(d.jobId)));
      const lost = deliveries.filter((_, i) => {
        const state = states[i];
        return state === "unknown" || state === "completed" || state === "failed";
      });
      // "unknown" is no job, or a hash left in no list: removing it lets the add below land.
      await Promise.all(lost.map((d) => queue.remove(d.jobId)));
      if (lost.length > 0) await webhooks.deliver(environment, lost);
      // Overdue with its job still queued: nothing woke a worker for it (a signal lost), so wake one.
      else if (deliveries.length > 0) await jobs.signal(environment, "webhook");
      return lost.length;
    },
    async deliver(environment, deliveries) {
      queues.assertReachable();
      const incarnation = await incarnationFor(environment);
      await jobs.addBulk(
        environment,
        "webhook",
        "deliver",
        deliveries.map(({ deliveryId, eventId, endpointId, jobId, attempts }) => ({
          data: { deliveryId, eventId, endpointId, incarnation },
          options: { ...deliverJobOptions, attempts, jobId },
        })),
      );
    },
  };

  return {
    handshakes,
    refreshes,
    revocations,
    retirements,
    webhooks,
    rewraps,
    requestConnectingSweep,
    stop: () => redis.off("ready", flushMissed),
  };
}
