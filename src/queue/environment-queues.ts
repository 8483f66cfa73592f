import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { type QueueKind, queueKinds, queueName } from "./queue-names.js";

export interface QueueRegistryDeps {
  connection: Redis;
  prefix: string;
}

export type QueueRegistry = ReturnType<typeof createQueueRegistry>;

/**
 * Producers for every environment's queues: one Queue object per queue per
 * process, sharing one Redis connection, created on first use.
 */
export function createQueueRegistry({ connection, prefix }: QueueRegistryDeps) {
  const queues = new Map<string, Queue>();

  function queue(environment: string, kind: QueueKind): Queue {
    const name = queueName(environment, kind);
    let found = queues.get(name);
    if (!found) {
      found = new Queue(name, { connection, prefix });
      queues.set(name, found);
    }
    return found;
  }

  /** Removes the environment's queues and every job on them, even active ones. */
  async function removeEnvironment(environment: string): Promise<void> {
    for (const kind of queueKinds) {
      const q = queue(environment, kind);
      queues.delete(q.name);
      try {
        await q.obliterate({ force: true });
      } finally {
        await q.close();
      }
    }
  }

  async function close(): Promise<void> {
    const all = [...queues.values()];
    queues.clear();
    await Promise.all(all.map((q) => q.close()));
  }

  return { queue, removeEnvironment, close };
}
