import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { randomEnvironmentName } from "../helpers/names.js";
import {
  accountEventPayload,
  type RawWatches,
  rawWatches,
  untilLive,
  type WatchTransport,
  watchChannel,
} from "../helpers/raw-watches.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

/**
 * Streams dropped the hard way (sockets destroyed, no cancel) must leave
 * nothing behind: every watcher's handler leaves the event bus, which then
 * unsubscribes the environment's channel (it stays subscribed while any
 * handler is left), and a watcher that comes later is served as usual.
 * bench/stream-churn.ts measures the memory side of the same churn.
 */
let d: Deployment;
const perGroup = 150;

beforeAll(async () => {
  d = await startDeployment(testConfig(), "api");
});

afterAll(async () => {
  await d.stop();
});

/** An environment of its own per test: a watcher left behind by one transport cannot hide behind another's. */
async function watchedEnvironment() {
  const environment = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(environment));
  const channel = watchChannel(d.server.config.ROOMKEY_QUEUE_PREFIX, environment);
  const publish = (tenant: string) => () => d.redis.publish(channel, accountEventPayload(tenant));
  return {
    publish,
    async subscribers(): Promise<number> {
      const [, count] = (await d.redis.pubsub("NUMSUB", channel)) as [string, number];
      return Number(count);
    },
    /** `count` streams of `transport` watching `tenant`, each of which has had an event. */
    async live(transport: WatchTransport, count: number, tenant: string): Promise<RawWatches> {
      const port = transport === "grpc" ? d.server.app.grpcPort : d.server.app.httpPort;
      const watches = rawWatches(transport, { port, environment, secret: d.server.adminKey });
      watches.open(count, tenant);
      await untilLive(watches, count, publish(tenant), { timeoutMs: 20_000 });
      return watches;
    },
  };
}

describe("WatchAccounts streams dropped without a cancel", () => {
  it.each<WatchTransport>(["grpc", "connect", "grpc-web"])(
    "when %s watchers' connections are destroyed, then their handlers leave the event bus and later watchers are served",
    async (transport) => {
      const { subscribers, publish, live } = await watchedEnvironment();
      const dropped = await live(transport, perGroup, "dropped");
      const kept = await live(transport, perGroup, "kept");
      expect(await subscribers()).toBe(1);

      dropped.drop();
      // The kept watchers still get events after the others went.
      await untilLive(kept, perGroup, publish("kept"), { timeoutMs: 10_000, events: 2 });
      expect(await subscribers()).toBe(1);

      kept.drop();
      await eventually(async () => (await subscribers()) === 0, 10_000, "the channel is unsubscribed");

      // Re-subscribing after the last handler left works: a new watcher is live.
      const later = await live(transport, 1, "later");
      later.drop();
      await eventually(async () => (await subscribers()) === 0, 10_000, "the channel is unsubscribed again");
      expect([...dropped.failures(), ...kept.failures(), ...later.failures()]).toEqual([]);
    },
    60_000,
  );
});
