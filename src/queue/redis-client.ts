import { Cluster, type ClusterNode, Redis, type RedisOptions } from "ioredis";

/**
 * A connection to Redis or to a Redis Cluster. Every multi-key command,
 * MULTI and script roomkey sends names keys of one hash slot: each
 * environment's queues share the tag `{<environment>}` (src/queue/queue-names.ts),
 * the fleet's keys `{fleet}`, the pub/sub channels `{events}`.
 */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server (`url`), or a cluster reached through seed nodes with the URL's credentials and TLS. */
export interface RedisTarget {
  url: string;
  /** `host:port` seeds of a Redis Cluster; empty: a single server at `url`. */
  clusterNodes: readonly string[];
}

/** A `host:port` seed, as REDIS_CLUSTER_NODES lists them. */
export function parseClusterNode(node: string): ClusterNode | undefined {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(node);
  const port = Number(match?.[2]);
  if (!match?.[1] || !(port > 0 && port < 65536)) return undefined;
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}

/**
 * Opens a connection with `options` (the same for a server or each cluster
 * node). On a cluster, the URL gives only the username, password and TLS
 * (`rediss:`); its host and port are not used.
 */
export function createRedisClient(target: RedisTarget, options: RedisOptions): RedisClient {
  if (target.clusterNodes.length === 0) return new Redis(target.url, options);
  const url = new URL(target.url);
  const { lazyConnect, enableOfflineQueue, ...perNode } = options;
  return new Cluster(
    // The configuration checked every node: an unreadable one is not a case here.
    target.clusterNodes.flatMap((node) => parseClusterNode(node) ?? []),
    {
      lazyConnect,
      enableOfflineQueue,
      redisOptions: {
        ...perNode,
        ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
        ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
        ...(url.protocol === "rediss:" ? { tls: {} } : {}),
      },
    },
  );
}
