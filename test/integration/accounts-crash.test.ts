import { createConnection, createServer, type Socket } from "node:net";
import type { MessageShape } from "@bufbuild/protobuf";
import { Redis } from "ioredis";
import { BSON, MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { databaseNames } from "../../src/storage/mongo.js";
import { abandonedAfterMs, type TransitionClaim, transitionsCollection } from "../../src/storage/versioned.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { killSpawned, type RoomkeyProcess, spawnRoomkey } from "../helpers/child-process.js";
import { grpcClient, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { dropDeployment, eventually, startTestServer, type TestServer, testConfig } from "../helpers/server.js";

const a = AccountService.method;
type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;

const accountCount = 100;
const kills = 3;

let provider: ApiKeyProvider;
let config: Config;
let api: TestServer;
let mongo: MongoClient;

beforeAll(async () => {
  provider = await startApiKeyProvider();
  // Short locks, so that the jobs of a killed worker run again within seconds.
  config = testConfig({
    ROOMKEY_PROVIDER_RETRY_MS: "50",
    ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
    ROOMKEY_JOB_LOCK_MS: "4000",
  });
  api = await startTestServer(config, "api");
  mongo = new MongoClient(config.MONGODB_URL);
});

afterAll(async () => {
  await killSpawned();
  await api.stop();
  await provider.stop();
  await mongo.close();
  await dropDeployment(config);
});

/** Waits until the worker process serves `environment`: its queues have a worker. */
async function serving(worker: RoomkeyProcess, environment: string): Promise<void> {
  await eventually(
    () => worker.lines.some((l) => l.msg === "serving environment" && l.environment === environment),
    30_000,
    "the worker process serves the environment",
  );
}

/** What the workers logged of handshake attempts that failed (each one is retried, asking the provider again). */
function failedHandshakes(workers: RoomkeyProcess[]): string[] {
  return workers.flatMap((worker) =>
    worker.lines
      .filter((l) => l.msg === "job failed" && l.job === "connect")
      .map((l) => `${String(l.id)}: ${String((l.err as { message?: unknown } | undefined)?.message)}`),
  );
}

/** A new environment with the API-key integration "keyed" on the test provider. */
async function environmentWithProvider(): Promise<string> {
  const environments = grpcClient(EnvironmentService, api.grpcAddress);
  const name = randomEnvironmentName();
  const admin = metadataFor(name, api.adminKey);
  try {
    await environments.unary(EnvironmentService.method.createEnvironment, {}, admin);
    await environments.unary(
      EnvironmentService.method.putIntegration,
      { integration: apiKeyIntegration("keyed", provider.url) },
      admin,
    );
  } finally {
    environments.close();
  }
  return name;
}

/**
 * A TCP proxy in front of MongoDB that passes everything until a client sends
 * an `update` of the accounts collection: that command, and whatever follows
 * it on its connection, never reaches the database. A worker behind it stops
 * between a transition's claim and its write, where a SIGKILL can then find it.
 */
interface AccountWriteHolder {
  /** MONGODB_URL through the proxy. */
  url: string;
  /** Whether an update of the accounts collection has been held. */
  held(): boolean;
  close(): Promise<void>;
}

async function accountWriteHolder(mongodbUrl: string): Promise<AccountWriteHolder> {
  const target = new URL(mongodbUrl);
  let held = false;
  const sockets = new Set<Socket>();
  // OP_MSG whose first section is the body: the command is its first key.
  const isAccountsUpdate = (frame: Buffer) =>
    frame.readInt32LE(12) === 2013 &&
    frame[20] === 0 &&
    BSON.deserialize(frame.subarray(21, 21 + frame.readInt32LE(21))).update === "accounts";
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port || 27017) });
    let pending = Buffer.alloc(0);
    let holding = false;
    client.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (!holding && pending.length >= 16 && pending.length >= pending.readInt32LE(0)) {
        const frame = pending.subarray(0, pending.readInt32LE(0));
        pending = pending.subarray(frame.length);
        if (isAccountsUpdate(frame)) {
          holding = true;
          held = true;
        } else {
          upstream.write(frame);
        }
      }
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const close = () => {
      for (const socket of [client, upstream]) {
        socket.destroy();
        sockets.delete(socket);
      }
    };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", close);
      socket.on("error", close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const url = new URL(mongodbUrl);
  url.host = `127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  url.searchParams.set("directConnection", "true");
  return {
    url: url.toString(),
    held: () => held,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("a worker process killed mid-handshake", () => {
  it(`when the worker gets SIGKILL ${kills} times during handshakes, then after a restart every account ends ACTIVE or FAILED once, and a watcher on the API process saw it`, async () => {
    const accounts = grpcClient(AccountService, api.grpcAddress);
    const admin = (environment: string) => metadataFor(environment, api.adminKey);
    const name = await environmentWithProvider();

    // A watcher on the API process; the handshakes run in the worker process.
    const channel = `${config.ROOMKEY_QUEUE_PREFIX}:{events}:accounts.${name}`;
    const redis = new Redis(config.REDIS_URL);
    const watch = accounts.stream(a.watchAccounts, {}, admin(name));
    const events: WatchEvent[] = [];
    watch.on("data", (event: WatchEvent) => events.push(event));
    watch.on("error", () => undefined);
    await eventually(
      async () => Number(((await redis.pubsub("NUMSUB", channel)) as [string, number])[1]) > 0,
      5_000,
      "the watch subscribes",
    );

    // Every fifth key is one the provider refuses: those accounts must end FAILED.
    const keys: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < accountCount; i++) {
      const key = `sk_crash_${i}_${Math.random().toString(36).slice(2)}`;
      if (i % 5 !== 4) provider.allow(key, { id: `remote-${i}`, name: `Remote ${i}` });
      keys.push(key);
      const { account } = await accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: key } } },
        admin(name),
      );
      ids.push(account?.id ?? "");
    }
    // Each check takes a second: with 10 handshakes at a time, a kill always lands on some in flight.
    provider.always({ kind: "slow", delayMs: 1_000 });

    // The provider calls of each key while each worker process lived (one process at a time).
    const workers: RoomkeyProcess[] = [];
    const callsPerLife: number[][] = [];
    let counted = keys.map(() => 0);
    const lifeEnded = () => {
      const now = keys.map((key) => provider.callsWith(key));
      callsPerLife.push(now.map((n, i) => n - (counted[i] ?? 0)));
      counted = now;
    };

    const statuses = async () =>
      Promise.all(ids.map(async (id) => (await accounts.unary(a.getAccount, { id }, admin(name))).account));
    const started = Date.now();
    try {
      for (let k = 0; k < kills; k++) {
        const worker = spawnRoomkey(config, "worker");
        workers.push(worker);
        await serving(worker, name);
        const before = provider.calls();
        // After the first kill, wait until a handshake cut off before runs again (its lock lapsed):
        // the same jobs are killed more than once.
        const rerun = (key: string) => provider.callsWith(key) >= k + 1;
        await eventually(
          () => provider.calls() >= before + 5 && keys.some(rerun),
          30_000,
          "handshakes (some run again) reach the provider",
        );
        worker.child.kill("SIGKILL");
        await worker.exited;
        const connecting = (await statuses()).filter((s) => s?.status === AccountStatus.CONNECTING).length;
        // A request the killed process sent has been read by now: what follows is the next process's.
        lifeEnded();
        console.log(`kill ${k + 1}: ${provider.calls()} provider calls so far, ${connecting} accounts CONNECTING`);
        expect(connecting).toBeGreaterThan(0);
      }
      provider.always(undefined);
      const worker = spawnRoomkey(config, "worker");
      workers.push(worker);
      try {
        // A kill between a run's claim of an outcome and its write leaves the account CONNECTING until
        // the claim is old enough for another run to finish it: the longest wait is that age.
        await eventually(
          async () => (await statuses()).every((s) => s?.status !== AccountStatus.CONNECTING),
          abandonedAfterMs + 30_000,
          "every account leaves CONNECTING",
        );
        lifeEnded();
        console.log(
          `every account settled ${Date.now() - started} ms after the first worker started; provider calls: ${provider.calls()} for ${accountCount} accounts`,
        );
        const final = await statuses();
        for (const [i, account] of final.entries()) {
          if (i % 5 === 4) {
            expect(account?.status, `account ${i}`).toBe(AccountStatus.FAILED);
            expect(account?.statusReason).toContain("401");
          } else {
            expect(account?.status, `account ${i}`).toBe(AccountStatus.ACTIVE);
            expect(account?.remoteId).toBe(`remote-${i}`);
          }
        }
        // The provider never fails here: no attempt may fail and be retried, asking the provider again.
        expect(failedHandshakes(workers)).toEqual([]);
        // A live worker checks a key once; only a kill, which may cut a check off (the provider asked,
        // the outcome never written), makes it run again, in the next process. Hence at most once per
        // process, 1 + kills in all.
        const twiceInOneLife = callsPerLife.flatMap((calls, life) =>
          calls.flatMap((n, i) => (n > 1 ? [`key ${i}: ${n} calls while worker ${life + 1} lived`] : [])),
        );
        expect(twiceInOneLife).toEqual([]);
        for (const key of keys) expect(provider.callsWith(key)).toBeLessThanOrEqual(1 + kills);
        // Each account changed status once: never two transitions, never a flip between outcomes.
        // (The first event of each account is its creation, with no previous status.)
        const outcomes = () => events.filter((e) => e.previousStatus !== AccountStatus.UNSPECIFIED);
        await eventually(() => outcomes().length >= accountCount * 0.9, 5_000, "the watcher sees the outcomes");
        const seen = new Map<string, number>();
        for (const event of outcomes()) {
          const id = event.account?.id ?? "";
          seen.set(id, (seen.get(id) ?? 0) + 1);
          expect(event.previousStatus).toBe(AccountStatus.CONNECTING);
          expect(event.account?.status).toBe(final[ids.indexOf(id)]?.status);
        }
        expect(Math.max(...seen.values())).toBe(1);
        console.log(`the watcher on the API process saw ${seen.size} of ${accountCount} outcomes`);
      } finally {
        worker.child.kill("SIGTERM");
        await worker.exited;
      }
    } finally {
      watch.cancel();
      redis.disconnect();
      accounts.close();
    }
  }, 240_000);

  it("when the worker is killed between claiming an account's outcome and writing it, then the next worker asks the provider once more, waits for the claim and the account ends with the claimed outcome", async () => {
    const accounts = grpcClient(AccountService, api.grpcAddress);
    const admin = (environment: string) => metadataFor(environment, api.adminKey);
    const name = await environmentWithProvider();
    const key = `sk_claimed_${Math.random().toString(36).slice(2)}`;
    provider.allow(key, { id: "remote-claimed", name: "Claimed" });
    const holder = await accountWriteHolder(config.MONGODB_URL);
    const workers: RoomkeyProcess[] = [];
    try {
      const { account } = await accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key } } },
        admin(name),
      );
      const id = account?.id ?? "";
      const stopped = spawnRoomkey({ ...config, MONGODB_URL: holder.url }, "worker");
      workers.push(stopped);
      await eventually(() => holder.held(), 30_000, "the handshake's write of the account is held");
      stopped.child.kill("SIGKILL");
      await stopped.exited;
      // The killed run asked the provider and claimed its outcome; the account never got it.
      expect(provider.callsWith(key)).toBe(1);
      const claims = mongo
        .db(databaseNames(config.ROOMKEY_DB_PREFIX).environment(name))
        .collection<TransitionClaim>(transitionsCollection.name);
      const claimOfAccount = { _id: { $regex: `^accounts/${id}@` } };
      expect((await claims.findOne(claimOfAccount))?.set.status).toBe("active");
      const read = async () => (await accounts.unary(a.getAccount, { id }, admin(name))).account;
      expect((await read())?.status).toBe(AccountStatus.CONNECTING);

      // The provider would answer otherwise now: the outcome that lands shows whose it is.
      provider.allow(key, { id: "remote-later", name: "Later" });
      const next = spawnRoomkey(config, "worker");
      workers.push(next);
      await eventually(() => provider.callsWith(key) >= 2, 30_000, "the cut-off handshake runs again");
      // The claim's writer is dead: make the claim old enough to be finished by others in 3 s, not a
      // minute. Meanwhile the run that asked again finds its write held.
      await claims.updateOne(claimOfAccount, { $set: { at: new Date(Date.now() - abandonedAfterMs + 3_000) } });
      await eventually(
        async () => (await read())?.status !== AccountStatus.CONNECTING,
        30_000,
        "the account leaves CONNECTING",
      );
      expect(await read()).toMatchObject({ status: AccountStatus.ACTIVE, remoteId: "remote-claimed" });
      expect(failedHandshakes(workers)).toEqual([]);
      expect(provider.callsWith(key)).toBe(2);
    } finally {
      for (const worker of workers) worker.child.kill("SIGKILL");
      await Promise.all(workers.map((worker) => worker.exited));
      await holder.close();
      accounts.close();
    }
  }, 90_000);
});
