import type { Logger } from "pino";
import type { RedisClient } from "../queue/redis-client.js";

export type Unsubscribe = () => void;

/**
 * Redis pub/sub between replicas and workers. Delivery is best effort: every
 * consumer also polls, so a lost message only delays a change.
 */
export interface EventBus {
  /** Resolves false (and logs) when the message could not be sent. */
  publish(channel: string, payload: unknown): Promise<boolean>;
  /**
   * Registers a handler at once; the SUBSCRIBE itself completes whenever Redis
   * is reachable (ioredis re-subscribes after reconnecting).
   */
  subscribe(channel: string, handler: (payload: unknown) => void | Promise<void>): Unsubscribe;
}

export interface EventBusDeps {
  /** For PUBLISH; may be shared with other commands. */
  publisher: RedisClient;
  /** A dedicated connection: a subscribed Redis connection can do nothing else. */
  subscriber: RedisClient;
  /** Namespaces the channels, like the queue prefix. */
  prefix: string;
  logger: Logger;
}

export function createEventBus({ publisher, subscriber, prefix, logger }: EventBusDeps): EventBus {
  const handlers = new Map<string, Set<(payload: unknown) => void | Promise<void>>>();
  // One hash tag for every channel. Plain PUBLISH reaches every node of a Redis Cluster; one slot would keep every
  // channel on one shard's connection should sharded pub/sub (SSUBSCRIBE) be used.
  const full = (channel: string) => `${prefix}:{events}:${channel}`;

  subscriber.on("message", (channel: string, message: string) => {
    const set = handlers.get(channel);
    if (!set) return;
    let payload: unknown;
    try {
      payload = JSON.parse(message);
    } catch {
      logger.warn({ channel }, "ignored a malformed event");
      return;
    }
    for (const handler of set) {
      Promise.resolve()
        .then(() => handler(payload))
        .catch((error: unknown) => logger.error({ err: error, channel }, "event handler failed"));
    }
  });

  return {
    async publish(channel, payload) {
      try {
        await publisher.publish(full(channel), JSON.stringify(payload));
        return true;
      } catch (error) {
        logger.warn({ err: error, channel }, "could not publish an event");
        return false;
      }
    },
    subscribe(channel, handler) {
      const name = full(channel);
      let set = handlers.get(name);
      if (!set) {
        set = new Set();
        handlers.set(name, set);
        subscriber.subscribe(name).catch((error: unknown) => logger.warn({ err: error, channel }, "subscribe failed"));
      }
      const handlersOfChannel = set;
      handlersOfChannel.add(handler);
      return () => {
        handlersOfChannel.delete(handler);
        if (handlersOfChannel.size === 0 && handlers.get(name) === handlersOfChannel) {
          handlers.delete(name);
          subscriber
            .unsubscribe(name)
            .catch((error: unknown) => logger.debug({ err: error, channel }, "unsubscribe failed"));
        }
      };
    },
  };
}
