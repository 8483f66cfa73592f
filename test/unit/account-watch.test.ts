import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { AccountEvent, AccountStatus } from "../../src/domain/accounts/accounts.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { accountsChannel, createAccountWatch } from "../../src/events/account-watch.js";
import type { EventBus } from "../../src/events/event-bus.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { createAuthenticator } from "../../src/rpc/authentication.js";
import { createEdge } from "../../src/rpc/edge.js";
import { createAccountHandlers } from "../../src/rpc/handlers/account-handlers.js";
import {
  asRoomkeyError,
  type Deferred,
  deferred,
  environmentRecord,
  rejectionOf,
  settle,
  testPageTokens,
} from "../helpers/fakes.js";

/** Pub/sub in memory: a payload goes through JSON, as over Redis, and reaches handlers at once. */
class FakeEventBus implements EventBus {
  readonly handlers = new Map<string, Set<(payload: unknown) => void | Promise<void>>>();
  readonly sent: { channel: string; payload: unknown }[] = [];
  private readonly firstSubscription: Deferred<string> = deferred();

  /** Resolves with the channel of the first subscription, made already or to come. */
  subscribed(): Promise<string> {
    return this.firstSubscription.promise;
  }

  async publish(channel: string, payload: unknown): Promise<boolean> {
    const wire: unknown = JSON.parse(JSON.stringify(payload));
    this.sent.push({ channel, payload: wire });
    for (const handler of this.handlers.get(channel) ?? []) handler(wire);
    return true;
  }

  subscribe(channel: string, handler: (payload: unknown) => void | Promise<void>) {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(handler);
    this.firstSubscription.resolve(channel);
    return () => {
      set.delete(handler);
    };
  }

  subscribers(channel: string): number {
    return this.handlers.get(channel)?.size ?? 0;
  }
}

const env = "env-a";

function event(
  id: string,
  status: AccountStatus = "active",
  previousStatus: AccountStatus = "connecting",
): AccountEvent {
  const time = new Date(Date.UTC(2030, 0, 1, 12, 0, 0));
  return {
    account: {
      id,
      integration: "acme",
      tenantId: "tenant-1",
      labels: {},
      status,
      statusReason: "",
      authType: "api_key",
      createTime: time,
      updateTime: time,
    },
    previousStatus,
    eventTime: time,
  };
}

function accountIds(id: number): string {
  return `acc_${String(id).padStart(22, "0")}`;
}

describe("account watch", () => {
  it("when events are published, then a watcher of that environment gets them in order with their dates", async () => {
    const bus = new FakeEventBus();
    const { events, watch } = createAccountWatch({ bus, maxBacklog: 10 });
    const stream = watch(env, new AbortController().signal);
    const first = stream.next();
    expect(await bus.subscribed()).toBe(accountsChannel(env));

    await events.publish("env-b", event(accountIds(9)));
    await events.publish(env, event(accountIds(1)));
    await events.publish(env, event(accountIds(2), "failed"));

    const one = await first;
    const two = await stream.next();
    expect(one.value).toEqual(event(accountIds(1)));
    expect(two.value).toEqual(event(accountIds(2), "failed"));
    expect((one.value as AccountEvent).eventTime).toBeInstanceOf(Date);
    expect(bus.sent.map((s) => s.channel)).toEqual(["accounts.env-b", "accounts.env-a", "accounts.env-a"]);
    await stream.return(undefined);
    expect(bus.subscribers(accountsChannel(env))).toBe(0);
  });

  it("when a watcher falls more than maxBacklog events behind, then it gets the backlog and then RESOURCE_EXHAUSTED WATCH_TOO_SLOW", async () => {
    const bus = new FakeEventBus();
    const { events, watch } = createAccountWatch({ bus, maxBacklog: 2 });
    const stream = watch(env, new AbortController().signal);
    const first = stream.next();
    await bus.subscribed();

    // All at once: the watcher gets no turn in between to take any of them.
    await Promise.all([1, 2, 3].map((n) => events.publish(env, event(accountIds(n)))));

    expect((await first).value).toEqual(event(accountIds(1)));
    expect((await stream.next()).value).toEqual(event(accountIds(2)));
    const error = asRoomkeyError(await rejectionOf(stream.next()));
    expect(error.kind).toBe("resource_exhausted");
    expect(error.reason).toBe("WATCH_TOO_SLOW");
    expect(error.message).toContain("more than 2 events behind");
    expect(bus.subscribers(accountsChannel(env))).toBe(0);
  });

  it("when events arrive after a watcher overflowed, then it never gets them: only what came before the gap, then the error", async () => {
    const bus = new FakeEventBus();
    const { events, watch } = createAccountWatch({ bus, maxBacklog: 2 });
    const stream = watch(env, new AbortController().signal);
    const first = stream.next();
    await bus.subscribed();
    await Promise.all([1, 2, 3].map((n) => events.publish(env, event(accountIds(n)))));
    expect((await first).value).toEqual(event(accountIds(1)));
    // Room in the backlog again, but event 3 was lost: 4 would hide the gap.
    await events.publish(env, event(accountIds(4)));
    expect((await stream.next()).value).toEqual(event(accountIds(2)));
    expect(asRoomkeyError(await rejectionOf(stream.next())).reason).toBe("WATCH_TOO_SLOW");
  });

  it("when a watcher is exactly maxBacklog events behind, then it gets them all and keeps watching", async () => {
    const bus = new FakeEventBus();
    const { events, watch } = createAccountWatch({ bus, maxBacklog: 2 });
    const abort = new AbortController();
    const stream = watch(env, abort.signal);
    const first = stream.next();
    await bus.subscribed();

    await Promise.all([1, 2].map((n) => events.publish(env, event(accountIds(n)))));

    expect((await first).value).toEqual(event(accountIds(1)));
    expect((await stream.next()).value).toEqual(event(accountIds(2)));
    const third = stream.next();
    await settle();
    await events.publish(env, event(accountIds(3)));
    expect((await third).value).toEqual(event(accountIds(3)));
    const fourth = stream.next();
    abort.abort();
    expect(await fourth).toEqual({ done: true, value: undefined });
  });

  it("when payloads are not account events, then they are dropped without filling the backlog", async () => {
    const bus = new FakeEventBus();
    const { watch } = createAccountWatch({ bus, maxBacklog: 1 });
    const stream = watch(env, new AbortController().signal);
    const first = stream.next();
    const channel = await bus.subscribed();

    await bus.publish(channel, "not json of an event");
    await bus.publish(channel, { account: { id: accountIds(1), status: "sleeping" }, previousStatus: "active" });
    await bus.publish(channel, { previousStatus: "active" });
    await bus.publish(channel, event(accountIds(2)));

    expect((await first).value).toEqual(event(accountIds(2)));
    await stream.return(undefined);
  });

  it("when the watcher's signal aborts while it waits, then the stream ends and unsubscribes", async () => {
    const bus = new FakeEventBus();
    const { watch } = createAccountWatch({ bus, maxBacklog: 10 });
    const abort = new AbortController();
    const stream = watch(env, abort.signal);
    const first = stream.next();
    await bus.subscribed();
    expect(bus.subscribers(accountsChannel(env))).toBe(1);

    abort.abort();

    expect(await first).toEqual({ done: true, value: undefined });
    expect(bus.subscribers(accountsChannel(env))).toBe(0);
  });
});

describe("WatchAccounts behind the edge", () => {
  const adminKey = "a".repeat(40);

  it("when the watcher falls too far behind, then the stream ends with RESOURCE_EXHAUSTED and reason WATCH_TOO_SLOW", async () => {
    const bus = new FakeEventBus();
    const accountWatch = createAccountWatch({ bus, maxBacklog: 2 });
    const notUsed = async (): Promise<never> => {
      throw new Error("not used");
    };
    const edge = createEdge({
      authenticator: createAuthenticator({
        adminKey,
        tokens: {
          authenticate: async () => {
            throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "unknown token");
          },
          authenticateFromMemory: () => undefined,
          knownToExist: () => false,
        },
      }),
      environments: { require: async (name) => environmentRecord(name) },
      validator: createValidator(),
      logger: pino({ level: "silent" }),
    });
    const handlers = createAccountHandlers({
      accounts: {
        connect: notUsed,
        get: notUsed,
        list: notUsed,
        update: notUsed,
        disconnect: notUsed,
        credentials: notUsed,
        startOAuth: notUsed,
        completeOAuth: notUsed,
        refresh: notUsed,
      },
      sessions: {
        create: notUsed,
        getFor: notUsed,
        revoke: notUsed,
        connect: notUsed,
        startOAuth: notUsed,
        completeOAuth: notUsed,
        getAccount: notUsed,
      },
      watch: accountWatch.watch,
      pages: testPageTokens(),
    });
    const transport = createRouterTransport((router) => {
      router.service(AccountService, edge.wrap(AccountService, handlers));
    });
    const client = createClient(AccountService, transport);

    const stream = client.watchAccounts(
      {},
      { headers: { "roomkey-environment": "staging", authorization: `Bearer ${adminKey}` } },
    );
    const received: string[] = [];
    const reading = (async () => {
      for await (const response of stream) received.push(response.account?.id ?? "");
    })();
    await bus.subscribed();
    await Promise.all([1, 2, 3].map((n) => accountWatch.events.publish("staging", event(accountIds(n)))));

    const error = ConnectError.from(await rejectionOf(reading));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("WATCH_TOO_SLOW");
    expect(received).toEqual([accountIds(1), accountIds(2)]);
  });
});
