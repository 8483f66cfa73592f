import type { MessageShape } from "@bufbuild/protobuf";
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnvironmentName } from "../../src/domain/environments/environment-name.js";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { handshakeJobId, queueName } from "../../src/queue/queue-names.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { type GrpcClient, grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { testQueue } from "../helpers/queues.js";
import {
  type Deployment,
  dropDeployment,
  eventually,
  startDeployment,
  startTestServer,
  type TestServer,
  testConfig,
} from "../helpers/server.js";

const a = AccountService.method;
type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;

let d: Deployment;
let provider: ApiKeyProvider;
let env: string;

const fastRetries = {
  ROOMKEY_PROVIDER_RETRY_MS: "50",
  ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
  ROOMKEY_JOB_LOCK_MS: "2000",
};

beforeAll(async () => {
  provider = await startApiKeyProvider();
  d = await startDeployment(testConfig(fastRetries));
  env = await newEnvironment();
});

afterAll(async () => {
  await d.stop();
  await provider.stop();
});

async function newEnvironment(
  environments: GrpcClient<typeof EnvironmentService> = d.environments,
  admin: Deployment["admin"] = d.admin,
  name = randomEnvironmentName(),
): Promise<string> {
  await environments.unary(EnvironmentService.method.createEnvironment, {}, admin(name));
  for (const [integration, authType, placement] of [
    ["keyed", AuthType.API_KEY, CredentialPlacement.BEARER],
    ["headered", AuthType.API_KEY, CredentialPlacement.HEADER],
    ["basic", AuthType.BASIC, CredentialPlacement.BASIC],
  ] as const) {
    await environments.unary(
      EnvironmentService.method.putIntegration,
      {
        integration: {
          name: integration,
          authType,
          credentialCheck: {
            url: `${provider.url}/me`,
            placement,
            parameterName: placement === CredentialPlacement.HEADER ? "X-Api-Key" : "",
            accountIdPath: "data.id",
            accountNamePath: "data.profile.name",
          },
        },
      },
      admin(name),
    );
  }
  return name;
}

let keys = 0;
/** A fresh API key the provider accepts, for a fresh remote account. */
function validKey(): string {
  const key = `sk_test_${Date.now()}_${keys++}_${Math.random().toString(36).slice(2)}`;
  provider.allow(key, { id: `remote-${keys}`, name: `Remote ${keys}` });
  return key;
}

function connect(environment: string, apiKey: string, extra: { integration?: string; tenantId?: string } = {}) {
  return d.accounts.unary(
    a.connectAccount,
    {
      integration: extra.integration ?? "keyed",
      tenantId: extra.tenantId ?? "tenant-1",
      credential: { case: "apiKey", value: { key: apiKey } },
    },
    d.admin(environment),
  );
}

async function statusOf(environment: string, id: string) {
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

async function settled(environment: string, id: string, timeoutMs = 10_000) {
  await eventually(
    async () => (await statusOf(environment, id))?.status !== AccountStatus.CONNECTING,
    timeoutMs,
    `account ${id} leaves CONNECTING`,
  );
  return statusOf(environment, id);
}

function accountsOf(environment: string) {
  return d.mongo
    .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${environment}`)
    .collection<{ _id: string; credentials: Record<string, string>; [field: string]: unknown }>("accounts");
}

/** Opens WatchAccounts and resolves once the server has subscribed, collecting what arrives. */
async function watch(environment: string, request: { accountIds?: string[]; tenantId?: string } = {}) {
  const channel = `${d.server.config.ROOMKEY_QUEUE_PREFIX}:{events}:accounts.${environment}`;
  const [, before] = (await d.redis.pubsub("NUMSUB", channel)) as [string, number];
  const stream: ClientReadableStream<WatchEvent> = d.accounts.stream(a.watchAccounts, request, d.admin(environment));
  const events: WatchEvent[] = [];
  const ended = new Promise<{ code: number } | undefined>((resolve) => {
    stream.on("error", (error: { code: number }) => resolve(error));
    stream.on("end", () => resolve(undefined));
  });
  stream.on("data", (event: WatchEvent) => events.push(event));
  await eventually(
    async () => Number(((await d.redis.pubsub("NUMSUB", channel)) as [string, number])[1]) > Number(before),
    5_000,
    "the watch subscribes",
  );
  return { stream, events, ended, channel };
}

describe("API key and basic handshakes", () => {
  it("when an API key account connects, then it returns CONNECTING at once and a watcher sees it turn ACTIVE with the remote identity", async () => {
    const key = validKey();
    const watcher = await watch(env);
    const started = Date.now();
    const { account } = await connect(env, key);
    const answeredMs = Date.now() - started;
    expect(account?.status).toBe(AccountStatus.CONNECTING);
    const id = account?.id ?? "";
    const seenMs = await eventually(
      () => watcher.events.some((e) => e.account?.id === id && e.account.status === AccountStatus.ACTIVE),
      10_000,
      "ACTIVE on the watch",
    );
    console.log(`ConnectAccount answered in ${answeredMs} ms; ACTIVE seen on WatchAccounts ${seenMs} ms later`);
    watcher.stream.cancel();
    const active = watcher.events.find((e) => e.account?.id === id && e.account.status === AccountStatus.ACTIVE);
    expect(active?.previousStatus).toBe(AccountStatus.CONNECTING);
    expect(active?.account).toMatchObject({ remoteId: expect.stringMatching(/^remote-/), authType: AuthType.API_KEY });
    expect(active?.account?.remoteName).toMatch(/^Remote /);
    const creds = await d.accounts.unary(a.getAccountCredentials, { id }, d.admin(env));
    expect(creds.credential).toEqual({ case: "apiKey", value: expect.objectContaining({ key }) });
    expect(provider.callsWith(key)).toBe(1);
  });

  it("when the key goes in a header, or basic credentials are used, then each reaches the provider its way", async () => {
    const key = validKey();
    const { account: headered } = await connect(env, key, { integration: "headered" });
    provider.allow("ada:s3cret pass", { id: "remote-basic", name: "Ada" });
    const { account: basic } = await d.accounts.unary(
      a.connectAccount,
      {
        integration: "basic",
        tenantId: "tenant-1",
        credential: { case: "basic", value: { username: "ada", password: "s3cret pass" } },
      },
      d.admin(env),
    );
    expect((await settled(env, headered?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
    const done = await settled(env, basic?.id ?? "");
    expect(done).toMatchObject({ status: AccountStatus.ACTIVE, remoteId: "remote-basic", remoteName: "Ada" });
    const creds = await d.accounts.unary(a.getAccountCredentials, { id: basic?.id ?? "" }, d.admin(env));
    expect(creds.credential).toEqual({
      case: "basic",
      value: expect.objectContaining({ username: "ada", password: "s3cret pass" }),
    });
  });

  it("when the provider refuses the key (401), then the account fails at once with the provider's reason and keeps no credential", async () => {
    const key = `sk_unknown_${Date.now()}`;
    const { account } = await connect(env, key);
    const failed = await settled(env, account?.id ?? "");
    expect(failed?.status).toBe(AccountStatus.FAILED);
    expect(failed?.statusReason).toBe("the provider answered 401: The API key is not valid.");
    expect(provider.callsWith(key)).toBe(1);
    const stored = await accountsOf(env).findOne({ _id: account?.id ?? "" });
    expect(stored?.credentials).toEqual({});
    const error = await grpcFailure(d.accounts.unary(a.getAccountCredentials, { id: account?.id ?? "" }, d.admin(env)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(error).errorInfo?.reason).toBe("ACCOUNT_NOT_ACTIVE");
  });

  it("when the provider answers 503, drops the connection and says 429 with Retry-After, then the handshake retries and ends ACTIVE", async () => {
    const key = validKey();
    provider.queue(
      { kind: "status", status: 503 },
      { kind: "drop" },
      { kind: "status", status: 429, headers: { "retry-after": "1" } },
    );
    const before = provider.callTimes().length;
    const { account } = await connect(env, key);
    const done = await settled(env, account?.id ?? "", 20_000);
    expect(done?.status).toBe(AccountStatus.ACTIVE);
    const times = provider.callTimes().slice(before);
    expect(times).toHaveLength(4);
    const afterRetryAfter = (times[3] ?? 0) - (times[2] ?? 0);
    console.log(
      `attempt gaps: ${times
        .slice(1)
        .map((t, i) => t - (times[i] ?? 0))
        .join(", ")} ms (Retry-After: 1 s)`,
    );
    expect(afterRetryAfter).toBeGreaterThanOrEqual(950);
  });

  it("when the provider keeps answering 500, then after the last attempt the account is FAILED saying it gave up", async () => {
    provider.always({ kind: "status", status: 500, body: { message: "upstream exploded" } });
    try {
      const { account } = await connect(env, validKey());
      const failed = await settled(env, account?.id ?? "", 60_000);
      expect(failed?.status).toBe(AccountStatus.FAILED);
      expect(failed?.statusReason).toBe("gave up: the provider answered 500: upstream exploded");
    } finally {
      provider.always(undefined);
    }
  }, 90_000);
});

describe("stored credentials", () => {
  it("when an account is stored, then no credential is readable in the database", async () => {
    const key = validKey();
    const { account } = await connect(env, key);
    await settled(env, account?.id ?? "");
    const stored = await accountsOf(env).findOne({ _id: account?.id ?? "" });
    expect(JSON.stringify(stored)).not.toContain(key);
    expect(stored?.credentials.api_key).toMatch(/^v1\./);
  });

  it("when a ciphertext is moved to another account or another environment, then it does not decrypt", async () => {
    const [k1, k2] = [validKey(), validKey()];
    const { account: one } = await connect(env, k1);
    const { account: two } = await connect(env, k2);
    const other = await newEnvironment();
    const { account: three } = await connect(other, validKey());
    for (const [e, acc] of [
      [env, one],
      [env, two],
      [other, three],
    ] as const) {
      expect((await settled(e, acc?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
    }
    const sealed = (await accountsOf(env).findOne({ _id: one?.id ?? "" }))?.credentials.api_key;
    await accountsOf(env).updateOne({ _id: two?.id ?? "" }, { $set: { "credentials.api_key": sealed } });
    await accountsOf(other).updateOne({ _id: three?.id ?? "" }, { $set: { "credentials.api_key": sealed } });
    for (const [e, acc] of [
      [env, two],
      [other, three],
    ] as const) {
      const error = await grpcFailure(d.accounts.unary(a.getAccountCredentials, { id: acc?.id ?? "" }, d.admin(e)));
      expect(error.code).toBe(status.FAILED_PRECONDITION);
      expect(grpcDetails(error).errorInfo?.reason).toBe("DECRYPTION_FAILED");
      expect(error.details).not.toContain(k1);
    }
  });

  it("when an environment is deleted, then its data key goes: the same name created again cannot open its old ciphertexts", async () => {
    const name = await newEnvironment();
    const key = validKey();
    const { account } = await connect(name, key);
    expect((await settled(name, account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
    const stored = await accountsOf(name).findOne({ _id: account?.id ?? "" });
    const control = d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_control`)
      .collection<{ _id: string; dataKey?: unknown }>("environments");
    const oldKey = (await control.findOne({ _id: name }))?.dataKey;
    expect(oldKey).toBeDefined();

    await d.environments.unary(EnvironmentService.method.deleteEnvironment, { force: true }, d.admin(name));
    expect(await control.findOne({ _id: name })).toBeNull();

    await newEnvironment(d.environments, d.admin, name);
    const newKey = (await control.findOne({ _id: name }))?.dataKey;
    expect(JSON.stringify(newKey)).not.toBe(JSON.stringify(oldKey));
    if (!stored) throw new Error("the account was stored");
    await accountsOf(name).insertOne(stored);
    const error = await grpcFailure(d.accounts.unary(a.getAccountCredentials, { id: stored._id }, d.admin(name)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(error).errorInfo?.reason).toBe("DECRYPTION_FAILED");
    expect(error.details).not.toContain(key);
  });
});

describe("reading, listing, changing and deleting accounts", () => {
  it("when ConnectAccount repeats an idempotency key, then the first account comes back; another request under it is refused", async () => {
    const request = {
      integration: "keyed",
      tenantId: "tenant-idem",
      credential: { case: "apiKey" as const, value: { key: validKey() } },
      idempotencyKey: `idem-${Date.now()}`,
    };
    const first = await d.accounts.unary(a.connectAccount, request, d.admin(env));
    const again = await d.accounts.unary(a.connectAccount, request, d.admin(env));
    expect(again.account?.id).toBe(first.account?.id);
    const error = await grpcFailure(
      d.accounts.unary(a.connectAccount, { ...request, tenantId: "someone-else" }, d.admin(env)),
    );
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(error).errorInfo?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await accountsOf(env).countDocuments({ tenantId: "tenant-idem" })).toBe(1);
  });

  it("when accounts are listed, then they come newest first in pages and each filter applies", async () => {
    const listEnv = await newEnvironment();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { account } = await connect(listEnv, i < 4 ? validKey() : "sk_refused", {
        tenantId: i % 2 ? "odd" : "even",
      });
      made.push(account?.id ?? "");
    }
    for (const id of made) await settled(listEnv, id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await d.accounts.unary(a.listAccounts, { pageSize: 2, pageToken }, d.admin(listEnv));
      seen.push(...page.accounts.map((acc) => acc.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...made].reverse());
    const odd = await d.accounts.unary(a.listAccounts, { tenantId: "odd" }, d.admin(listEnv));
    expect(odd.accounts.map((acc) => acc.id)).toEqual([made[3], made[1]]);
    const failed = await d.accounts.unary(a.listAccounts, { status: AccountStatus.FAILED }, d.admin(listEnv));
    expect(failed.accounts.map((acc) => acc.id)).toEqual([made[4]]);
    const none = await d.accounts.unary(a.listAccounts, { integration: "basic" }, d.admin(listEnv));
    expect(none.accounts).toEqual([]);
    const wrongToken = await grpcFailure(
      d.accounts.unary(a.listAccounts, { tenantId: "even", pageToken: "bm9wZQ" }, d.admin(listEnv)),
    );
    expect(wrongToken.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(wrongToken).badRequest?.fieldViolations[0]?.field).toBe("page_token");
  });

  it("when labels are updated with a mask, then only labels change; another path is INVALID_ARGUMENT naming update_mask", async () => {
    const { account } = await connect(env, validKey());
    const id = account?.id ?? "";
    const updated = await d.accounts.unary(
      a.updateAccount,
      { account: { id, labels: { team: "growth" } }, updateMask: { paths: ["labels"] } },
      d.admin(env),
    );
    expect(updated.account?.labels).toEqual({ team: "growth" });
    const error = await grpcFailure(
      d.accounts.unary(
        a.updateAccount,
        { account: { id, tenantId: "else" }, updateMask: { paths: ["tenant_id"] } },
        d.admin(env),
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("update_mask");
    // A label change racing the handshake loses neither.
    expect((await settled(env, id))?.status).toBe(AccountStatus.ACTIVE);
    expect((await statusOf(env, id))?.labels).toEqual({ team: "growth" });
  });

  it("when an account is deleted, then it is DISCONNECTED with its credentials wiped, and deleting again changes nothing", async () => {
    const { account } = await connect(env, validKey());
    const id = account?.id ?? "";
    await settled(env, id);
    const deleted = await d.accounts.unary(a.deleteAccount, { id }, d.admin(env));
    expect(deleted.account?.status).toBe(AccountStatus.DISCONNECTED);
    expect((await accountsOf(env).findOne({ _id: id }))?.credentials).toEqual({});
    const again = await d.accounts.unary(a.deleteAccount, { id }, d.admin(env));
    expect(again.account?.updateTime).toEqual(deleted.account?.updateTime);
    const error = await grpcFailure(d.accounts.unary(a.getAccountCredentials, { id }, d.admin(env)));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
  });

  it("when ConnectAccount names an unknown integration or the wrong credential kind, then the error names the field", async () => {
    const unknown = await grpcFailure(connect(env, "k", { integration: "nope" }));
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(grpcDetails(unknown).errorInfo?.reason).toBe("INTEGRATION_NOT_FOUND");
    const wrongKind = await grpcFailure(connect(env, "k", { integration: "basic" }));
    expect(wrongKind.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(wrongKind).badRequest?.fieldViolations[0]?.field).toBe("basic");
    const noCredential = await grpcFailure(
      d.accounts.unary(a.connectAccount, { integration: "keyed", tenantId: "t" }, d.admin(env)),
    );
    expect(noCredential.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("isolation between environments", () => {
  it("when an account of A is named in B, then every RPC says NOT_FOUND, and a job on A's queue naming B's account changes nothing in B", async () => {
    const b = await newEnvironment();
    const { account } = await connect(env, validKey());
    const id = account?.id ?? "";
    await settled(env, id);
    const calls = [
      () => d.accounts.unary(a.getAccount, { id }, d.admin(b)),
      () => d.accounts.unary(a.getAccountCredentials, { id }, d.admin(b)),
      () => d.accounts.unary(a.deleteAccount, { id }, d.admin(b)),
      () =>
        d.accounts.unary(
          a.updateAccount,
          { account: { id, labels: { x: "y" } }, updateMask: { paths: ["labels"] } },
          d.admin(b),
        ),
    ];
    for (const call of calls) {
      const error = await grpcFailure(call());
      expect(error.code).toBe(status.NOT_FOUND);
      expect(grpcDetails(error).errorInfo?.reason).toBe("ACCOUNT_NOT_FOUND");
    }

    // B's account, CONNECTING while B has no provider answer yet; a job on A's queue names it.
    provider.always({ kind: "slow", delayMs: 3_000 });
    let bAccount: string;
    try {
      bAccount = (await connect(b, validKey())).account?.id ?? "";
      const before = await accountsOf(b).findOne({ _id: bAccount });
      const queue = testQueue(d.redis, d.server.config.ROOMKEY_QUEUE_PREFIX, env, "handshake");
      const job = await queue.addAndWake(
        "connect",
        { accountId: bAccount, attempt: 1 },
        { jobId: `cross-${bAccount}` },
      );
      await eventually(async () => (await job.getState()) === "completed", 10_000, "the cross-environment job runs");
      expect(job.id).not.toBe(handshakeJobId(bAccount, 1));
      expect((await job.isCompleted()) && (await queue.getJob(job.id ?? ""))?.returnvalue).toMatchObject({
        outcome: "skipped",
      });
      expect(await accountsOf(b).findOne({ _id: bAccount })).toEqual(before);
      await queue.close();
    } finally {
      provider.always(undefined);
    }
    expect((await settled(b, bAccount))?.status).toBe(AccountStatus.ACTIVE);
  });
});

describe("nothing is lost", () => {
  it("when the handshake jobs vanish from Redis while accounts are CONNECTING, then the sweep queues them again and they finish", async () => {
    // An API replica alone: jobs wait in Redis with no worker to take them.
    const config = testConfig(fastRetries);
    const api = await startTestServer(config, "api");
    const accounts = grpcClient(AccountService, api.grpcAddress);
    const environments = grpcClient(EnvironmentService, api.grpcAddress);
    const admin = (environment: string) => metadataFor(environment, api.adminKey);
    let worker: TestServer | undefined;
    const queue = (name: string) =>
      new Queue(queueName(parseEnvironmentName(name), "handshake"), {
        connection: d.redis,
        prefix: config.ROOMKEY_QUEUE_PREFIX,
      });
    try {
      const name = await newEnvironment(environments, admin);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { account } = await accounts.unary(
          a.connectAccount,
          { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: validKey() } } },
          admin(name),
        );
        ids.push(account?.id ?? "");
      }
      const handshakes = queue(name);
      expect((await handshakes.getJobCounts("wait")).wait).toBe(5);
      await handshakes.obliterate({ force: true });
      expect(await handshakes.getJobCounts("wait", "active", "delayed")).toEqual({ wait: 0, active: 0, delayed: 0 });
      await handshakes.close();

      const started = Date.now();
      worker = await startTestServer(config, "worker");
      const statuses = async () =>
        Promise.all(ids.map(async (id) => (await accounts.unary(a.getAccount, { id }, admin(name))).account?.status));
      await eventually(
        async () => (await statuses()).every((s) => s === AccountStatus.ACTIVE),
        30_000,
        "every account ACTIVE",
      );
      console.log(`5 accounts whose jobs were removed were ACTIVE ${Date.now() - started} ms after a worker started`);
    } finally {
      accounts.close();
      environments.close();
      await worker?.stop();
      await api.stop();
      await dropDeployment(config);
    }
  }, 60_000);
});

describe("WatchAccounts", () => {
  it("when the client cancels, then the server drops its subscription; when the server shuts down, then the stream ends", async () => {
    const watcher = await watch(env);
    const [, subscribed] = (await d.redis.pubsub("NUMSUB", watcher.channel)) as [string, number];
    watcher.stream.cancel();
    expect((await watcher.ended)?.code).toBe(status.CANCELLED);
    await eventually(
      async () =>
        Number(((await d.redis.pubsub("NUMSUB", watcher.channel)) as [string, number])[1]) < Number(subscribed),
      5_000,
      "the subscription goes",
    );

    const config = testConfig(fastRetries);
    const other = await startTestServer(config);
    const client = grpcClient(AccountService, other.grpcAddress);
    const stream = client.stream(a.watchAccounts, {}, metadataFor("development", other.adminKey));
    stream.on("data", () => undefined);
    const ended = new Promise<number | undefined>((resolve) => {
      stream.on("error", (error: { code: number }) => resolve(error.code));
      stream.on("end", () => resolve(undefined));
    });
    await new Promise((r) => setTimeout(r, 300));
    const stopping = Date.now();
    await other.stop();
    const code = await ended;
    console.log(`a watch ended ${Date.now() - stopping} ms after shutdown began, with code ${code}`);
    client.close();
    await dropDeployment(config);
    expect(code).toBe(status.UNAVAILABLE);
  });
});
