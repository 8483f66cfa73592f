/**
 * The world outside roomkey for bench/accounts.ts, run as its own process (a
 * child with an IPC channel) so that it does not share roomkey's CPU: the
 * third-party providers (the API key provider and the OAuth 2.0 provider of
 * the tests) and the ConnectAccount callers, each environment with its own
 * WatchAccounts stream. bench/accounts.ts drives it with the messages below.
 */
import type { MessageShape } from "@bufbuild/protobuf";
import { type ClientReadableStream, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../src/gen/roomkey/v1/account_service_pb.js";
import { startApiKeyProvider } from "../test/helpers/api-key-provider.js";
import { type GrpcClient, grpcClient, metadataFor } from "../test/helpers/clients.js";
import { startOAuthProvider } from "../test/helpers/oauth-provider.js";

export interface ConnectTarget {
  environment: string;
  /** An API token of the environment with accounts:write and accounts:read. */
  secret: string;
}

export type LoadRequest =
  | {
      kind: "connect";
      address: string;
      /** Redis channel prefix of the deployment (its queue prefix): to see that a watch has subscribed. */
      channelPrefix: string;
      targets: ConnectTarget[];
      seconds: number;
      /** Connects in flight per environment. */
      concurrency: number;
    }
  | { kind: "usage" }
  | { kind: "stop" };

export interface ConnectResult {
  /** Per environment: connects that reached ACTIVE on the watch, and the time its callers took. */
  environments: { environment: string; completed: number; elapsedMs: number }[];
  /** Connect -> ACTIVE seen, in ms, across environments. */
  latencies: number[];
  /** ConnectAccount errors by gRPC code, accounts that turned FAILED, and waits that timed out. */
  errors: Record<string, number>;
  /** CPU this process used (callers and API key provider). */
  cpuUs: number;
}

export type LoadReply =
  | { kind: "ready"; apiKeyUrl: string; issuer: string }
  | { kind: "connect"; result: ConnectResult }
  | { kind: "usage"; cpuUs: number; refreshCalls: number; apiKeyCalls: number; liveRefreshTokens: number }
  | { kind: "stopped" }
  | { kind: "error"; message: string };

type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;
type Outcome = { at: number; status: AccountStatus };

/** How long a connect may take to reach ACTIVE before it counts as lost. */
const settleTimeoutMs = 30_000;

const send = (reply: LoadReply) => process.send?.(reply);
const keys = await startApiKeyProvider();
const oauth = await startOAuthProvider();
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let client: GrpcClient<typeof AccountService> | undefined;
let made = 0;

/** One environment's watch, open for the life of this process: ACTIVE and FAILED as they arrive, by account. */
interface Watcher {
  stream: ClientReadableStream<WatchEvent>;
  /** Outcomes that arrived before ConnectAccount answered. */
  early: Map<string, Outcome>;
  waiting: Map<string, (outcome: Outcome) => void>;
}
const watchers = new Map<string, Watcher>();

async function subscribers(channel: string): Promise<number> {
  const [, count] = (await redis.pubsub("NUMSUB", channel)) as [string, number];
  return Number(count);
}

async function watcherFor(accounts: GrpcClient<typeof AccountService>, target: ConnectTarget, channelPrefix: string) {
  const found = watchers.get(target.environment);
  if (found) return found;
  const channel = `${channelPrefix}:{events}:accounts.${target.environment}`;
  const before = await subscribers(channel);
  const stream = accounts.stream(
    AccountService.method.watchAccounts,
    {},
    metadataFor(target.environment, target.secret),
  );
  const watcher: Watcher = { stream, early: new Map(), waiting: new Map() };
  stream.on("data", (event: WatchEvent) => {
    const id = event.account?.id;
    const status = event.account?.status;
    if (id === undefined || (status !== AccountStatus.ACTIVE && status !== AccountStatus.FAILED)) return;
    const outcome = { at: performance.now(), status };
    const waiter = watcher.waiting.get(id);
    if (waiter) waiter(outcome);
    else watcher.early.set(id, outcome);
  });
  stream.on("error", (error: ServiceError) => {
    if (error.code !== grpcStatus.CANCELLED)
      send({ kind: "error", message: `the watch of ${target.environment} ended: ${error.message}` });
  });
  watchers.set(target.environment, watcher);
  const deadline = Date.now() + 5_000;
  while ((await subscribers(channel)) <= before) {
    if (Date.now() > deadline) throw new Error(`the watch of ${target.environment} did not subscribe within 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return watcher;
}

function outcomeOf(watcher: Watcher, id: string): Promise<Outcome | undefined> {
  const early = watcher.early.get(id);
  if (early) {
    watcher.early.delete(id);
    return Promise.resolve(early);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      watcher.waiting.delete(id);
      resolve(undefined);
    }, settleTimeoutMs);
    watcher.waiting.set(id, (outcome) => {
      clearTimeout(timer);
      watcher.waiting.delete(id);
      resolve(outcome);
    });
  });
}

async function connect(request: Extract<LoadRequest, { kind: "connect" }>): Promise<ConnectResult> {
  client ??= grpcClient(AccountService, request.address);
  const accounts = client;
  const targets = await Promise.all(
    request.targets.map(async (target) => ({
      target,
      watcher: await watcherFor(accounts, target, request.channelPrefix),
      metadata: metadataFor(target.environment, target.secret),
    })),
  );
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const count = (what: string) => {
    errors[what] = (errors[what] ?? 0) + 1;
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + request.seconds * 1000;
  const environments = await Promise.all(
    targets.map(async ({ target, watcher, metadata }) => {
      let completed = 0;
      const lane = async () => {
        while (performance.now() < deadline) {
          const n = made++;
          const key = `sk_bench_${process.pid}_${n}_${Math.random().toString(36).slice(2)}`;
          keys.allow(key, { id: `remote-${n}`, name: `Remote ${n}` });
          const callStarted = performance.now();
          let id: string;
          try {
            const answer = await accounts.unary(
              AccountService.method.connectAccount,
              {
                integration: "keyed",
                tenantId: `tenant-${n % 1000}`,
                credential: { case: "apiKey", value: { key: key } },
              },
              metadata,
            );
            id = answer.account?.id ?? "";
          } catch (error) {
            count(`code ${(error as ServiceError).code}`);
            continue;
          }
          const outcome = await outcomeOf(watcher, id);
          if (!outcome) count("no ACTIVE within 30 s");
          else if (outcome.status !== AccountStatus.ACTIVE) count("FAILED");
          else {
            completed++;
            latencies.push(outcome.at - callStarted);
          }
        }
      };
      await Promise.all(Array.from({ length: request.concurrency }, lane));
      return { environment: target.environment, completed, elapsedMs: performance.now() - started };
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return { environments, latencies, errors, cpuUs: cpu.user + cpu.system };
}

async function stop() {
  for (const watcher of watchers.values()) watcher.stream.cancel();
  client?.close();
  redis.disconnect();
  await keys.stop();
  await oauth.stop();
}

process.on("message", (message: LoadRequest) => {
  const handle = async (): Promise<LoadReply> => {
    switch (message.kind) {
      case "connect":
        return { kind: "connect", result: await connect(message) };
      case "usage": {
        const cpu = process.cpuUsage();
        return {
          kind: "usage",
          cpuUs: cpu.user + cpu.system,
          refreshCalls: oauth.calls("refresh_token"),
          apiKeyCalls: keys.calls(),
          liveRefreshTokens: oauth.liveRefreshTokens(),
        };
      }
      case "stop":
        await stop();
        return { kind: "stopped" };
    }
  };
  handle().then(
    (reply) => {
      send(reply);
      if (reply.kind === "stopped") process.disconnect();
    },
    (error: unknown) => send({ kind: "error", message: error instanceof Error ? error.message : String(error) }),
  );
});
send({ kind: "ready", apiKeyUrl: keys.url, issuer: oauth.issuer });
