import { randomBytes } from "node:crypto";
import { type ServiceError, status } from "@grpc/grpc-js";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import { fingerprintOf } from "../../src/domain/crypto/envelope.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { databaseNames } from "../../src/storage/mongo.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { type GrpcClient, grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import {
  capturedLogger,
  dropDeployment,
  eventually,
  startTestServer,
  type TestServer,
  testConfig,
} from "../helpers/server.js";
import { signersOf, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const a = AccountService.method;
const e = EnvironmentService.method;
const redirectUri = "https://app.example/oauth/callback";

const keyA = randomBytes(32).toString("base64");
const keyB = randomBytes(32).toString("base64");
const fpA = fingerprintOf(Buffer.from(keyA, "base64"));
const fpB = fingerprintOf(Buffer.from(keyB, "base64"));

/** The deployment's settings with these master keys (already parsed: every replica shares prefixes and backends). */
function withKeys(base: Config, keys: { id: string; key: string }[], currentId: string): Config {
  return { ...base, ROOMKEY_MASTER_KEY: undefined, ROOMKEY_MASTER_KEYS: keys, ROOMKEY_MASTER_KEY_ID: currentId };
}

/** One running roomkey (API and workers) with the clients that reach it. */
interface Replica {
  server: TestServer;
  environments: GrpcClient<typeof EnvironmentService>;
  accounts: GrpcClient<typeof AccountService>;
  lines: { msg: string; [field: string]: unknown }[];
  /** Calls of the load sent to it and not yet answered. */
  inflight: number;
}

let base: Config;
let adminKey: string;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;
let receiver: WebhookReceiver;
/** The replica the load and the checks call now; replaced replica by replica, never left without one. */
let live: Replica;
const replicas: Replica[] = [];

async function startReplica(config: Config): Promise<Replica> {
  const log = capturedLogger("info");
  const server = await startTestServer(config, "all", log.logger);
  const replica = {
    server,
    environments: grpcClient(EnvironmentService, server.grpcAddress),
    accounts: grpcClient(AccountService, server.grpcAddress),
    lines: log.lines,
    inflight: 0,
  };
  replicas.push(replica);
  return replica;
}

async function stopReplica(replica: Replica): Promise<void> {
  await replica.server.stop();
  replica.environments.close();
  replica.accounts.close();
}

/**
 * Starts the next configuration, sends every new call to it, and stops the previous one once the calls
 * sent to it were answered (as a load balancer drains a replica before it is stopped).
 */
async function rollTo(config: Config): Promise<Replica> {
  const previous = live;
  live = await startReplica(config);
  await eventually(() => previous.inflight === 0, 30_000, "calls in flight to the previous replica answered");
  await stopReplica(previous);
  return live;
}

const admin = (environment: string) => metadataFor(environment, adminKey);

beforeAll(async () => {
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  receiver = await startWebhookReceiver();
  base = testConfig({
    ROOMKEY_MASTER_KEY: "",
    ROOMKEY_MASTER_KEYS: `a:${keyA}`,
    ROOMKEY_PROVIDER_RETRY_MS: "50",
    ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
    ROOMKEY_JOB_LOCK_MS: "5000",
  });
  adminKey = base.ROOMKEY_ADMIN_KEY;
  live = await startReplica(base);
});

afterAll(async () => {
  for (const replica of replicas) await stopReplica(replica).catch(() => undefined);
  await dropDeployment(base);
  await receiver?.stop();
  await oauth?.stop();
  await keys?.stop();
});

/** What one environment holds that is sealed under its data key, and what it must open to. */
interface Room {
  name: string;
  /** API-key accounts and the key each must read back. */
  accounts: Map<string, string>;
  oauthAccount: string;
  webhook: { id: string; secret: string; path: string };
  clientSecret: string;
}

let keyCount = 0;
function validKey(): string {
  const key = `sk_rotation_${keyCount++}_${randomBytes(6).toString("hex")}`;
  keys.allow(key, { id: `remote-${keyCount}`, name: `Remote ${keyCount}` });
  return key;
}

async function statusOf(environment: string, id: string) {
  return (await live.accounts.unary(a.getAccount, { id }, admin(environment))).account?.status;
}

async function settled(environment: string, id: string): Promise<AccountStatus | undefined> {
  await eventually(
    async () => (await statusOf(environment, id)) !== AccountStatus.CONNECTING,
    20_000,
    `account ${id} leaves CONNECTING`,
  );
  return statusOf(environment, id);
}

async function connectKey(environment: string, key: string): Promise<string> {
  const { account } = await live.accounts.unary(
    a.connectAccount,
    { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key } } },
    admin(environment),
  );
  return account?.id ?? "";
}

async function connectOAuth(environment: string): Promise<string> {
  const started = await live.accounts.unary(
    a.startOAuthConnection,
    { integration: "crm", tenantId: "tenant-1", redirectUri },
    admin(environment),
  );
  const { code, state } = await oauth.authorize(started.authorizationUrl);
  const { account } = await live.accounts.unary(a.completeOAuthConnection, { state, code }, admin(environment));
  return account?.id ?? "";
}

async function makeRoom(): Promise<Room> {
  const name = randomEnvironmentName();
  await live.environments.unary(e.createEnvironment, {}, admin(name));
  await live.environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, admin(name));
  const clientSecret = `client-secret-${randomBytes(4).toString("hex")}`;
  await live.environments.unary(
    e.putIntegration,
    { integration: oauthIntegration("crm", oauth.issuer, clientSecret) },
    admin(name),
  );
  const path = `hook-${name}`;
  const created = await live.environments.unary(
    e.createWebhookEndpoint,
    { endpoint: { url: receiver.url(path), eventTypes: ["account.active"], enabled: true } },
    admin(name),
  );
  const accounts = new Map<string, string>();
  for (let i = 0; i < 3; i++) {
    const key = validKey();
    accounts.set(await connectKey(name, key), key);
  }
  const oauthAccount = await connectOAuth(name);
  for (const id of [...accounts.keys(), oauthAccount]) expect(await settled(name, id)).toBe(AccountStatus.ACTIVE);
  return {
    name,
    accounts,
    oauthAccount,
    webhook: { id: created.endpoint?.id ?? "", secret: created.signingSecret, path },
    clientSecret,
  };
}

/** A call of the load that did not succeed, as the caller saw it. */
interface LoadFailure {
  op: string;
  environment: string;
  code: number | undefined;
  reason: string | undefined;
  message: string;
}

/**
 * Credential reads and writes on every environment, calling whichever replica
 * is live, until stopped: GetAccountCredentials (checked against the key it
 * was given), ConnectAccount (each must end ACTIVE), PutIntegration with a new
 * client secret, UpdateAccount, UpdateEnvironment (races the rewrap's write),
 * and ListAccounts one page at a time (page tokens across replicas).
 */
function startLoad(rooms: Room[], workers: number) {
  const failures: LoadFailure[] = [];
  const connected: { environment: string; id: string; key: string }[] = [];
  let calls = 0;
  let stopped = false;
  const pageTokens = new Map<string, string>();

  async function attempt<T>(
    op: string,
    environment: string,
    call: (replica: Replica) => Promise<T>,
  ): Promise<T | undefined> {
    calls++;
    const replica = live;
    replica.inflight++;
    try {
      return await call(replica);
    } catch (error) {
      const failure = error as ServiceError;
      failures.push({
        op,
        environment,
        code: failure.code,
        reason: typeof failure.code === "number" ? grpcDetails(failure).errorInfo?.reason : undefined,
        message: failure.message,
      });
      return undefined;
    } finally {
      replica.inflight--;
    }
  }

  async function step(room: Room, n: number): Promise<void> {
    const { name } = room;
    const ids = [...room.accounts.keys()];
    const id = ids[n % ids.length] ?? "";
    const creds = await attempt("GetAccountCredentials", name, (r) =>
      r.accounts.unary(a.getAccountCredentials, { id }, admin(name)),
    );
    if (creds && !(creds.credential.case === "apiKey" && creds.credential.value.key === room.accounts.get(id))) {
      failures.push({ op: "GetAccountCredentials", environment: name, code: 0, reason: "WRONG_VALUE", message: id });
    }
    const oauthCreds = await attempt("GetAccountCredentials(oauth)", name, (r) =>
      r.accounts.unary(a.getAccountCredentials, { id: room.oauthAccount }, admin(name)),
    );
    if (oauthCreds && oauthCreds.credential.case !== "oauth2") {
      failures.push({
        op: "GetAccountCredentials(oauth)",
        environment: name,
        code: 0,
        reason: "WRONG_VALUE",
        message: "",
      });
    }
    switch (n % 4) {
      case 0: {
        const key = validKey();
        const made = await attempt("ConnectAccount", name, (r) =>
          r.accounts.unary(
            a.connectAccount,
            { integration: "keyed", tenantId: "tenant-load", credential: { case: "apiKey", value: { key } } },
            admin(name),
          ),
        );
        if (made?.account) connected.push({ environment: name, id: made.account.id, key });
        break;
      }
      case 1: {
        room.clientSecret = `client-secret-${randomBytes(4).toString("hex")}`;
        const secret = room.clientSecret;
        await attempt("PutIntegration", name, (r) =>
          r.environments.unary(
            e.putIntegration,
            { integration: oauthIntegration("crm", oauth.issuer, secret) },
            admin(name),
          ),
        );
        break;
      }
      case 2:
        await attempt("UpdateAccount", name, (r) =>
          r.accounts.unary(
            a.updateAccount,
            { account: { id, labels: { round: String(n) } }, updateMask: { paths: ["labels"] } },
            admin(name),
          ),
        );
        await attempt("UpdateEnvironment", name, (r) =>
          r.environments.unary(
            e.updateEnvironment,
            { environment: { displayName: `round ${n}` }, updateMask: { paths: ["display_name"] } },
            admin(name),
          ),
        );
        break;
      default: {
        const page = await attempt("ListAccounts", name, (r) =>
          r.accounts.unary(a.listAccounts, { pageSize: 2, pageToken: pageTokens.get(name) ?? "" }, admin(name)),
        );
        if (page) pageTokens.set(name, page.nextPageToken);
      }
    }
  }

  const loops = Array.from({ length: workers }, async (_, worker) => {
    for (let n = worker; !stopped; n += workers) {
      const room = rooms[n % rooms.length];
      if (room) await step(room, Math.floor(n / rooms.length));
    }
  });
  return {
    failures,
    connected,
    calls: () => calls,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Waits for the load to make `count` more calls (so each phase is really under load). */
async function underLoad(load: { calls(): number }, count: number): Promise<void> {
  const from = load.calls();
  await eventually(() => load.calls() - from >= count, 60_000, `${count} more calls of the load`);
}

async function masterKeyStatus() {
  return live.environments.unary(e.getMasterKeyStatus, {}, admin("development"));
}

describe("master-key rotation", () => {
  it("when the master key is rotated under a steady load of credential reads and writes, then no call fails, every data key moves to the new key, and with the old key removed everything still opens", async () => {
    const rooms: Room[] = [];
    for (let i = 0; i < 4; i++) rooms.push(await makeRoom());
    const before = await masterKeyStatus();
    expect(before.dataKeysOnOldKeys).toBe(0);
    expect(before.keys[0]).toMatchObject({ id: "a", fingerprint: fpA, current: true, configured: true });
    const environmentCount = before.keys[0]?.dataKeys ?? 0;
    expect(environmentCount).toBeGreaterThanOrEqual(rooms.length + 3);

    const load = startLoad(rooms, 3);
    await underLoad(load, 40);

    // 1. Every replica learns key B while A stays current (a rolling restart: one replica at a time).
    await rollTo(
      withKeys(
        base,
        [
          { id: "a", key: keyA },
          { id: "b", key: keyB },
        ],
        "a",
      ),
    );
    await underLoad(load, 40);
    expect((await masterKeyStatus()).dataKeysOnOldKeys).toBe(0);

    // 2. B becomes current: new data keys go under B, the rewrap jobs move the others.
    const switched = await rollTo(
      withKeys(
        base,
        [
          { id: "a", key: keyA },
          { id: "b", key: keyB },
        ],
        "b",
      ),
    );
    const switchedAt = Date.now();
    const midway = await masterKeyStatus();
    expect(midway.keys.map((k) => [k.id, k.current])).toEqual([
      ["b", true],
      ["a", false],
    ]);
    const queued = await live.environments.unary(e.rewrapDataKeys, {}, admin("development"));
    await eventually(
      async () => (await masterKeyStatus()).dataKeysOnOldKeys === 0,
      60_000,
      "every data key under master key B",
    );
    const rotationMs = Date.now() - switchedAt;
    await underLoad(load, 40);
    const after = await masterKeyStatus();
    expect(after.keys).toEqual([
      expect.objectContaining({ id: "b", fingerprint: fpB, current: true, configured: true }),
      expect.objectContaining({ id: "a", fingerprint: fpA, current: false, configured: true, dataKeys: 0 }),
    ]);
    const rewrapped = switched.lines.filter((line) => line.msg === "data key rewrapped under the current master key");
    expect(new Set(rewrapped.map((line) => line.environment)).size).toBe(rewrapped.length);
    expect(rewrapped.map((line) => line.from)).toEqual(rewrapped.map(() => "a"));
    // A second request finds nothing left to move.
    expect((await live.environments.unary(e.rewrapDataKeys, {}, admin("development"))).queuedEnvironments).toEqual([]);

    // The operator's gauge says the same: every data key under B, none left under A.
    const gauge = async () =>
      (await (await fetch(`http://127.0.0.1:${live.server.app.metricsPort}/metrics`)).text())
        .split("\n")
        .filter((line) => line.startsWith("roomkey_data_keys{"));
    await eventually(
      async () =>
        (await gauge()).sort().join("\n") ===
        [`roomkey_data_keys{master_key="a"} 0`, `roomkey_data_keys{master_key="b"} ${environmentCount}`].join("\n"),
      10_000,
      "roomkey_data_keys shows every data key under b",
    );

    // 3. Key A removed from the configuration.
    await rollTo(withKeys(base, [{ id: "b", key: keyB }], "b"));
    await underLoad(load, 40);
    await load.stop();

    const figures = {
      environments: environmentCount,
      queuedByRewrapDataKeys: queued.queuedEnvironments.length,
      dataKeysRewrapped: rewrapped.length,
      decryptionFailures: load.failures.filter(
        (f) => f.reason === "DECRYPTION_FAILED" || f.reason === "MASTER_KEY_MISMATCH",
      ).length,
      failedCalls: load.failures.length,
      loadCalls: load.calls(),
      rotationMs,
    };
    console.log(`master-key rotation: ${JSON.stringify(figures)}`);
    expect(load.failures).toEqual([]);
    // Nor did any background work (handshakes, refreshes, deliveries, sweeps) fail to open a key on any replica.
    const troubles = replicas
      .flatMap((replica) => replica.lines)
      .filter((line) => /MASTER_KEY_MISMATCH|DECRYPTION_FAILED|DecryptionError/.test(JSON.stringify(line)));
    expect(troubles).toEqual([]);
    // Each data key moved exactly once, all by the replica whose current key is B.
    expect(rewrapped.length).toBe(environmentCount);

    const final = await masterKeyStatus();
    expect(final.dataKeysOnOldKeys).toBe(0);
    expect(
      final.keys.map(({ id, fingerprint, current, configured, dataKeys }) => ({
        id,
        fingerprint,
        current,
        configured,
        dataKeys,
      })),
    ).toEqual([{ id: "b", fingerprint: fpB, current: true, configured: true, dataKeys: environmentCount }]);

    // Every account of the load ended ACTIVE: its handshake opened the data key and sealed the credential.
    for (const { environment, id, key } of load.connected) {
      expect(await settled(environment, id)).toBe(AccountStatus.ACTIVE);
      const creds = await live.accounts.unary(a.getAccountCredentials, { id }, admin(environment));
      expect(creds.credential).toEqual({ case: "apiKey", value: expect.objectContaining({ key }) });
    }
    for (const room of rooms) {
      // The environment's audit log has the rewrap, by the worker, from A to B.
      const rewraps = await live.environments.unary(
        e.listAuditEvents,
        { method: "worker/master_key.rewrap" },
        admin(room.name),
      );
      expect(rewraps.events.map((event) => [event.resource, event.details])).toEqual([
        [room.name, { from: "a", to: "b" }],
      ]);
      // Credentials sealed under key A's time still open.
      for (const [id, key] of room.accounts) {
        const creds = await live.accounts.unary(a.getAccountCredentials, { id }, admin(room.name));
        expect(creds.credential).toEqual({ case: "apiKey", value: expect.objectContaining({ key }) });
      }
      // The OAuth client secret opens: a refresh and a new code exchange both send it.
      await live.accounts.unary(a.refreshAccountCredentials, { id: room.oauthAccount }, admin(room.name));
      const exchanged = await connectOAuth(room.name);
      expect(await settled(room.name, exchanged)).toBe(AccountStatus.ACTIVE);
      // The webhook endpoint's secret opens: the account.active event is signed with it.
      await eventually(
        () => receiver.received(room.webhook.path).some((d) => d.body.includes(exchanged)),
        20_000,
        `account.active of ${exchanged} delivered`,
      );
      const delivery = receiver.received(room.webhook.path).find((d) => d.body.includes(exchanged));
      expect(delivery && signersOf(delivery, [room.webhook.secret])).toEqual([0]);
    }

    // Nothing in the control database is still wrapped under A.
    const mongo = new MongoClient(base.MONGODB_URL);
    try {
      const records = await mongo
        .db(databaseNames(base.ROOMKEY_DB_PREFIX).control)
        .collection<{ _id: string; dataKey: { masterKeyId: string } }>("environments")
        .find({})
        .toArray();
      expect(records.map((r) => r.dataKey.masterKeyId)).toEqual(records.map(() => fpB));
    } finally {
      await mongo.close();
    }
  }, 240_000);

  it("when a replica starts without the master key of some data keys, then it serves the rest, those environments fail MASTER_KEY_MISMATCH naming the key, and nothing is rewrapped", async () => {
    const keyC = randomBytes(32).toString("base64");
    const fpC = fingerprintOf(Buffer.from(keyC, "base64"));
    const stranger = await startReplica(withKeys(base, [{ id: "c", key: keyC }], "c"));
    const call = (environment: string) =>
      stranger.environments.unary(
        e.putIntegration,
        { integration: oauthIntegration("crm", oauth.issuer, "another-secret") },
        admin(environment),
      );
    try {
      const logged = stranger.lines.find((line) =>
        String(line.msg).includes(`master key ${fpB}, which is not configured`),
      );
      expect(logged?.environments).toEqual(expect.arrayContaining(["development"]));
      // Its own new environment works.
      const own = randomEnvironmentName();
      await stranger.environments.unary(e.createEnvironment, {}, admin(own));
      await call(own);
      // The others are refused, naming the missing key, and stay as they were.
      const refused = await grpcFailure(call("development"));
      expect(refused.code).toBe(status.FAILED_PRECONDITION);
      expect(grpcDetails(refused).errorInfo?.reason).toBe("MASTER_KEY_MISMATCH");
      expect(refused.details).toContain(fpB);
      const report = await stranger.environments.unary(e.getMasterKeyStatus, {}, admin(own));
      expect(
        report.keys.map(({ id, fingerprint, current, configured }) => ({ id, fingerprint, current, configured })),
      ).toEqual([
        { id: "c", fingerprint: fpC, current: true, configured: true },
        { id: fpB, fingerprint: fpB, current: false, configured: false },
      ]);
      expect(report.keys[0]?.environments).toEqual([own]);
      expect((await stranger.environments.unary(e.rewrapDataKeys, {}, admin(own))).queuedEnvironments).toEqual([]);
      await stranger.environments.unary(e.deleteEnvironment, { force: true }, admin(own));
      const onB = (await masterKeyStatus()).keys[0];
      expect(onB).toMatchObject({ id: "b", current: true });
      expect(onB?.environments).toContain("development");
    } finally {
      await stopReplica(stranger);
    }
  });
});
