/**
 * Stream churn: rounds of 2,000 WatchAccounts streams opened and dropped
 * abruptly (sockets destroyed, no cancel), on the gRPC port and on the
 * Connect port. After the last round and a full collection, memory must be
 * within 10% of its level after round 1, and no watcher may be left
 * subscribed.
 */
import { Redis } from "ioredis";
import { Inspector, inspectorUrlIn, type Memory, measure } from "../helpers/inspector.js";
import {
  accountEventPayload,
  rawWatches,
  untilLive,
  type WatchTransport,
  watchChannel,
} from "../helpers/raw-watches.js";
import { type Outcome, type Roomkey, until } from "./harness.js";

const environment = "development";
/** Streams opened at a time, each batch on a tenant of its own (see bench/stream-churn.ts). */
const batch = 250;
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

async function churn(
  roomkey: Roomkey,
  inspector: Inspector,
  redis: Redis,
  channel: string,
  transport: WatchTransport,
  streams: number,
  rounds: number,
): Promise<{ first: Memory; last: Memory; stuck: number; lingering: number; failures: number }> {
  const port = transport === "grpc" ? Number(roomkey.grpcAddress.split(":")[1]) : roomkey.httpPort;
  // Only the server's accepted sockets on this port: the process's other handles (Redis, MongoDB, timers,
  // a worker's connection that comes and goes) say nothing about the streams and made this wait time out.
  const serverSockets = `process._getActiveHandles().filter((h) => h && h.localPort === ${port} && typeof h.remotePort === "number").length`;
  const baseSockets = await inspector.evaluate<number>(serverSockets);
  let first: Memory | undefined;
  let last: Memory | undefined;
  let stuck = 0;
  let lingering = 0;
  let failures = 0;
  for (let round = 1; round <= rounds; round++) {
    const watches = rawWatches(transport, { port, environment, secret: roomkey.adminKey });
    for (let opened = 0; opened < streams; opened += batch) {
      const tenant = `churn-${opened / batch}`;
      watches.open(Math.min(batch, streams - opened), tenant);
      await untilLive(watches, Math.min(opened + batch, streams), () =>
        redis.publish(channel, accountEventPayload(tenant)),
      );
    }
    failures += watches.failures().length;
    watches.drop();
    const closed = await until(async () => (await inspector.evaluate<number>(serverSockets)) <= baseSockets, 30_000);
    if (closed === undefined) lingering++;
    const unsubscribed = await until(async () => {
      const [, count] = (await redis.pubsub("NUMSUB", channel)) as [string, number];
      return Number(count) === 0;
    }, 5_000);
    if (unsubscribed === undefined) stuck++;
    const memory = await measure(inspector, roomkey.pid);
    first ??= memory;
    last = memory;
  }
  if (!first || !last) throw new Error("no round ran");
  return { first, last, stuck, lingering, failures };
}

export async function streamChurn(roomkey: Roomkey, streams = 2_000, rounds = 10): Promise<Outcome> {
  const url = inspectorUrlIn(roomkey.process.stderr());
  if (!url) {
    return { name: "stream churn", ok: false, figures: "roomkey was not started with --inspect: nothing to measure" };
  }
  const inspector = await Inspector.open(url);
  const prefix = roomkey.config.ROOMKEY_QUEUE_PREFIX;
  const redis = new Redis(roomkey.config.REDIS_URL);
  const channel = watchChannel(prefix, environment);
  const parts: string[] = [];
  let ok = roomkey.alive();
  let target = true;
  try {
    for (const transport of ["grpc", "connect"] as const) {
      const { first, last, stuck, lingering, failures } = await churn(
        roomkey,
        inspector,
        redis,
        channel,
        transport,
        streams,
        rounds,
      );
      const rss = last.rss / first.rss;
      const heap = last.heapUsed / first.heapUsed;
      ok &&= stuck === 0 && lingering === 0 && failures === 0;
      target &&= rss <= 1.1 && heap <= 1.1;
      parts.push(
        `${transport}: after round 1 RSS ${mb(first.rss)} MiB, heap ${mb(first.heapUsed)} MiB; after round ${rounds} ` +
          `RSS ${mb(last.rss)} MiB (${rss.toFixed(3)}x), heap ${mb(last.heapUsed)} MiB (${heap.toFixed(3)}x); ` +
          `watchers left subscribed after a round: ${stuck}, rounds whose sockets were still open 30 s after the drop: ${lingering}, ` +
          `streams that failed before the drop: ${failures}`,
      );
    }
  } finally {
    inspector.close();
    redis.disconnect();
  }
  return {
    name: `stream churn: ${rounds} rounds of ${streams} WatchAccounts streams dropped abruptly, per port (memory after GC)`,
    ok: ok && roomkey.alive(),
    target,
    figures: `${parts.join("; ")} (target <= 1.1x)`,
  };
}
