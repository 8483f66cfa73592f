/**
 * A master-key rotation under load: roomkey (API and workers in one process)
 * with master key A and BENCH_ENVIRONMENTS environments (50 by default), each
 * with an API-key integration, an OAuth integration with a client secret, a
 * webhook endpoint and BENCH_ACCOUNTS active API-key accounts (2). A steady
 * load of credential reads and writes (GetAccountCredentials, ConnectAccount,
 * PutIntegration with a new client secret, UpdateAccount) runs throughout
 * while the replica is replaced, one configuration at a time, as a rolling
 * restart does: A+B with A current, then B current (the workers rewrap every
 * data key on their own; nobody calls RewrapDataKeys), then B alone. Prints
 * the data keys rewrapped, the decryption failures and every other failed
 * call, the time from B going current to GetMasterKeyStatus reporting no data
 * key on an old key, and the calls made meanwhile.
 *
 *   npm run bench:rotation
 *   BENCH_ENVIRONMENTS=100 npm run bench:rotation
 */
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import type { ServiceError } from "@grpc/grpc-js";
import type { Config } from "../src/config.js";
import { AccountService, AccountStatus } from "../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../src/gen/roomkey/v1/environment_service_pb.js";
import type * as Logging from "../src/logger.js";
import type * as Main from "../src/main.js";
import { startApiKeyProvider } from "../test/helpers/api-key-provider.js";
import { type GrpcClient, grpcClient, grpcDetails, metadataFor } from "../test/helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../test/helpers/integrations.js";
import { randomEnvironmentName } from "../test/helpers/names.js";
import { dropDeployment, testConfig } from "../test/helpers/server.js";
import { startWebhookReceiver } from "../test/helpers/webhook-receiver.js";

const environmentCount = Number(process.env.BENCH_ENVIRONMENTS ?? 50);
const accountsPerEnvironment = Number(process.env.BENCH_ACCOUNTS ?? 2);
/** Load loops calling at once. */
const loadConcurrency = Number(process.env.BENCH_LOAD ?? 4);
/** Environments set up at once. */
const setupConcurrency = 4;
const a = AccountService.method;
const e = EnvironmentService.method;
const root = resolve(import.meta.dirname, "..");
const main: typeof Main = await import(resolve(root, "dist/src/main.js"));
const logging: typeof Logging = await import(resolve(root, "dist/src/logger.js"));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
  return Date.now() - started;
}

const keyA = randomBytes(32).toString("base64");
const keyB = randomBytes(32).toString("base64");
const base = testConfig({
  ROOMKEY_MASTER_KEY: "",
  ROOMKEY_MASTER_KEYS: `a:${keyA}`,
  ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
  ROOMKEY_PROVIDER_RETRY_MS: "50",
});
const withKeys = (keys: { id: string; key: string }[], currentId: string): Config => ({
  ...base,
  ROOMKEY_MASTER_KEY: undefined,
  ROOMKEY_MASTER_KEYS: keys,
  ROOMKEY_MASTER_KEY_ID: currentId,
});
const admin = (environment: string) => metadataFor(environment, base.ROOMKEY_ADMIN_KEY);

interface Replica {
  app: Main.Roomkey;
  environments: GrpcClient<typeof EnvironmentService>;
  accounts: GrpcClient<typeof AccountService>;
  inflight: number;
}

/** The rewrap jobs' reports, from every replica's log: environment, from key, to key. */
const rewraps: { environment: string; from: string; to: string }[] = [];
const rewrapLog = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split("\n")) {
      if (line.includes("data key rewrapped")) rewraps.push(JSON.parse(line));
    }
    done();
  },
});

async function startReplica(config: Config): Promise<Replica> {
  const app = await main.startRoomkey(config, "all", logging.createLogger("info", rewrapLog));
  await app.ready;
  const address = `127.0.0.1:${app.grpcPort}`;
  return {
    app,
    environments: grpcClient(EnvironmentService, address),
    accounts: grpcClient(AccountService, address),
    inflight: 0,
  };
}

let live = await startReplica(base);

/** New calls go to the next replica at once; the previous one stops once its calls were answered. */
async function rollTo(config: Config): Promise<{ startMs: number }> {
  const previous = live;
  const started = Date.now();
  live = await startReplica(config);
  const startMs = Date.now() - started;
  await until(() => previous.inflight === 0, 60_000, "calls in flight to the previous replica");
  await previous.app.shutdown();
  previous.environments.close();
  previous.accounts.close();
  return { startMs };
}

const provider = await startApiKeyProvider();
const receiver = await startWebhookReceiver();
let keyCount = 0;
function validKey(): string {
  const key = `sk_bench_${keyCount++}_${randomBytes(6).toString("hex")}`;
  provider.allow(key, { id: `remote-${keyCount}`, name: `Remote ${keyCount}` });
  return key;
}

interface Room {
  name: string;
  accounts: Map<string, string>;
}

async function accountSettled(environment: string, id: string): Promise<AccountStatus | undefined> {
  let status: AccountStatus | undefined;
  await until(
    async () => {
      status = (await live.accounts.unary(a.getAccount, { id }, admin(environment))).account?.status;
      return status !== AccountStatus.CONNECTING;
    },
    60_000,
    `account ${id} leaves CONNECTING`,
  );
  return status;
}

async function makeRoom(): Promise<Room> {
  const name = randomEnvironmentName();
  await live.environments.unary(e.createEnvironment, {}, admin(name));
  await live.environments.unary(
    e.putIntegration,
    { integration: apiKeyIntegration("keyed", provider.url) },
    admin(name),
  );
  await live.environments.unary(
    e.putIntegration,
    { integration: oauthIntegration("crm", "https://oauth.example", `secret-${randomBytes(4).toString("hex")}`) },
    admin(name),
  );
  await live.environments.unary(
    e.createWebhookEndpoint,
    { endpoint: { url: receiver.url(name), eventTypes: ["account.active"], enabled: true } },
    admin(name),
  );
  const accounts = new Map<string, string>();
  for (let i = 0; i < accountsPerEnvironment; i++) {
    const key = validKey();
    const { account } = await live.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "bench", credential: { case: "apiKey", value: { key } } },
      admin(name),
    );
    accounts.set(account?.id ?? "", key);
  }
  for (const id of accounts.keys()) {
    if ((await accountSettled(name, id)) !== AccountStatus.ACTIVE)
      throw new Error(`account ${id} did not become ACTIVE`);
  }
  return { name, accounts };
}

const setupStarted = Date.now();
const rooms: Room[] = [];
for (let i = 0; i < environmentCount; i += setupConcurrency) {
  const batch = Math.min(setupConcurrency, environmentCount - i);
  rooms.push(...(await Promise.all(Array.from({ length: batch }, () => makeRoom()))));
}
const setupMs = Date.now() - setupStarted;

const failures: { op: string; code?: number; reason?: string; message: string }[] = [];
const connected: { environment: string; id: string; key: string }[] = [];
let calls = 0;
let stopped = false;

async function attempt<T>(op: string, call: (replica: Replica) => Promise<T>): Promise<T | undefined> {
  calls++;
  const replica = live;
  replica.inflight++;
  try {
    return await call(replica);
  } catch (error) {
    const failure = error as ServiceError;
    const reason = typeof failure.code === "number" ? grpcDetails(failure).errorInfo?.reason : undefined;
    failures.push({ op, code: failure.code, reason, message: failure.message });
    return undefined;
  } finally {
    replica.inflight--;
  }
}

async function step(room: Room, n: number): Promise<void> {
  const { name } = room;
  const ids = [...room.accounts.keys()];
  const id = ids[n % ids.length] ?? "";
  const read = await attempt("GetAccountCredentials", (r) =>
    r.accounts.unary(a.getAccountCredentials, { id }, admin(name)),
  );
  if (read && !(read.credential.case === "apiKey" && read.credential.value.key === room.accounts.get(id))) {
    failures.push({ op: "GetAccountCredentials", reason: "WRONG_VALUE", message: id });
  }
  switch (n % 3) {
    case 0: {
      const key = validKey();
      const made = await attempt("ConnectAccount", (r) =>
        r.accounts.unary(
          a.connectAccount,
          { integration: "keyed", tenantId: "bench-load", credential: { case: "apiKey", value: { key } } },
          admin(name),
        ),
      );
      if (made?.account) connected.push({ environment: name, id: made.account.id, key });
      break;
    }
    case 1:
      await attempt("PutIntegration", (r) =>
        r.environments.unary(
          e.putIntegration,
          { integration: oauthIntegration("crm", "https://oauth.example", `secret-${randomBytes(4).toString("hex")}`) },
          admin(name),
        ),
      );
      break;
    default:
      await attempt("UpdateAccount", (r) =>
        r.accounts.unary(
          a.updateAccount,
          { account: { id, labels: { round: String(n) } }, updateMask: { paths: ["labels"] } },
          admin(name),
        ),
      );
  }
}

const loops = Array.from({ length: loadConcurrency }, async (_, worker) => {
  for (let n = worker; !stopped; n += loadConcurrency) {
    const room = rooms[Math.floor(Math.random() * rooms.length)];
    if (room) await step(room, n);
  }
});

const status = () => live.environments.unary(e.getMasterKeyStatus, {}, admin("development"));
const total = (await status()).keys[0]?.dataKeys ?? 0;
await sleep(2_000);

// 1. Every replica learns B, A still current.
const phase1 = await rollTo(
  withKeys(
    [
      { id: "a", key: keyA },
      { id: "b", key: keyB },
    ],
    "a",
  ),
);
await sleep(2_000);

// 2. B current: the workers find the data keys under A and rewrap them, with no call asking.
const onABefore = (await status()).keys.find((k) => k.id === "a")?.dataKeys ?? 0;
const callsBefore = calls;
const switchedAt = Date.now();
const phase2 = await rollTo(
  withKeys(
    [
      { id: "a", key: keyA },
      { id: "b", key: keyB },
    ],
    "b",
  ),
);
let onOldKeys = total;
await until(
  async () => {
    onOldKeys = (await status()).dataKeysOnOldKeys;
    return onOldKeys === 0;
  },
  300_000,
  "every data key under B",
);
const rotationMs = Date.now() - switchedAt;
const rotationCalls = calls - callsBefore;

// 3. A removed.
await sleep(2_000);
const phase3 = await rollTo(withKeys([{ id: "b", key: keyB }], "b"));
await sleep(2_000);
stopped = true;
await Promise.all(loops);

// Everything opens under B alone: every account's credentials, those connected under load included.
let verified = 0;
for (const room of rooms) {
  for (const [id, key] of room.accounts) {
    const read = await live.accounts.unary(a.getAccountCredentials, { id }, admin(room.name));
    if (read.credential.case !== "apiKey" || read.credential.value.key !== key) throw new Error(`${id} reads wrong`);
    verified++;
  }
}
let notActive = 0;
for (const { environment, id, key } of connected) {
  if ((await accountSettled(environment, id)) !== AccountStatus.ACTIVE) {
    notActive++;
    continue;
  }
  const read = await live.accounts.unary(a.getAccountCredentials, { id }, admin(environment));
  if (read.credential.case !== "apiKey" || read.credential.value.key !== key) throw new Error(`${id} reads wrong`);
  verified++;
}
const final = await status();

const decryptionFailures = failures.filter(
  (f) => f.reason === "DECRYPTION_FAILED" || f.reason === "MASTER_KEY_MISMATCH" || f.reason === "WRONG_VALUE",
).length;
const rewrapped = rewraps.length;
const rewrappedOnce = new Set(rewraps.map((r) => r.environment)).size;
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`);
console.log(
  `environments: ${total} (${environmentCount} made + the 3 defaults), ${accountsPerEnvironment} API-key accounts each, ` +
    `an OAuth client secret and a webhook endpoint each; set up in ${(setupMs / 1000).toFixed(1)} s`,
);
console.log(
  `load: ${loadConcurrency} loops of GetAccountCredentials + ConnectAccount / PutIntegration / UpdateAccount`,
);
console.log(
  `replica start-up: A+B (A current) ${phase1.startMs} ms, B current ${phase2.startMs} ms, B alone ${phase3.startMs} ms`,
);
console.log(
  `data keys rewrapped:           ${rewrapped} of ${total} (${rewrappedOnce} environments; under B at the end: ${final.keys[0]?.dataKeys}; on A before the switch: ${onABefore})`,
);
console.log(`decryption failures:           ${decryptionFailures}`);
console.log(
  `failed calls (any reason):     ${failures.length}${failures.length ? ` ${JSON.stringify(failures.slice(0, 5))}` : ""}`,
);
console.log(`B current -> 0 on old keys:    ${(rotationMs / 1000).toFixed(2)} s (B's replica start-up included)`);
console.log(
  `calls during the rotation:     ${rotationCalls} (${(rotationCalls / (rotationMs / 1000)).toFixed(0)} calls/s)`,
);
console.log(`calls in all:                  ${calls}`);
console.log(`accounts connected under load: ${connected.length}, not ACTIVE: ${notActive}`);
console.log(`credentials read back under B alone: ${verified}`);
console.log(
  `status at the end: ${JSON.stringify(final.keys.map((k) => ({ id: k.id, current: k.current, dataKeys: k.dataKeys })))}, on old keys ${final.dataKeysOnOldKeys}`,
);

await live.app.shutdown();
live.environments.close();
live.accounts.close();
await provider.stop();
await receiver.stop();
await dropDeployment(base);
if (decryptionFailures > 0 || failures.length > 0 || notActive > 0) process.exitCode = 1;
