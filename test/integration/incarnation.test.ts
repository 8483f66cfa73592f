import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { databaseNames } from "../../src/storage/mongo.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { type DelayingForwarder, startDelayingForwarder } from "../helpers/delaying-forwarder.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { testQueue } from "../helpers/queues.js";
import { capturedLogger, type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const a = AccountService.method;
const e = EnvironmentService.method;

/** How long the provider holds the call that is in flight while the environment is replaced. */
const providerDelayMs = 1_500;
/**
 * Time the old job has, once the provider answered, to say it was discarded;
 * a job that does not say so is given all of it to write whatever it writes.
 */
const afterAnswerMs = 3_000;
const rounds = 4;
const log = capturedLogger("warn");

let d: Deployment;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;
let tokenEndpoint: DelayingForwarder;
const redirectUri = "https://app.example/oauth/callback";

beforeAll(async () => {
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  tokenEndpoint = await startDelayingForwarder(oauth.issuer);
  d = await startDeployment(testConfig({ ROOMKEY_PROVIDER_RETRY_MS: "50" }), "all", { logger: log.logger });
});

afterAll(async () => {
  await d.stop();
  await tokenEndpoint.stop();
  await oauth.stop();
  await keys.stop();
});

/** Creates the environment with an API key and an OAuth integration (whose token requests can be held). */
async function createEnvironment(name: string): Promise<void> {
  await d.environments.unary(e.createEnvironment, {}, d.admin(name));
  await d.environments.unary(
    e.putIntegration,
    {
      integration: {
        name: "keyed",
        authType: AuthType.API_KEY,
        credentialCheck: { url: `${keys.url}/me`, placement: CredentialPlacement.BEARER, accountIdPath: "data.id" },
      },
    },
    d.admin(name),
  );
  await d.environments.unary(
    e.putIntegration,
    {
      integration: {
        name: "crm",
        authType: AuthType.OAUTH2,
        oauth2: {
          authorizationUrl: `${oauth.issuer}/authorize`,
          tokenUrl: `${tokenEndpoint.url}/token`,
          clientId: "roomkey-test",
          clientSecret: "client-secret-1",
          scopes: ["openid"],
          pkce: true,
        },
        credentialCheck: {
          url: `${oauth.issuer}/userinfo`,
          placement: CredentialPlacement.BEARER,
          accountIdPath: "sub",
        },
      },
    },
    d.admin(name),
  );
}

async function replaceEnvironment(name: string): Promise<void> {
  await d.environments.unary(e.deleteEnvironment, { force: true }, d.admin(name));
  await createEnvironment(name);
}

let keyCount = 0;
function validKey(): string {
  const key = `sk_incarnation_${Date.now()}_${keyCount++}`;
  keys.allow(key, { id: `remote-${keyCount}`, name: `Remote ${keyCount}` });
  return key;
}

async function settled(environment: string, id: string) {
  await eventually(
    async () =>
      (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account?.status !== AccountStatus.CONNECTING,
    15_000,
    `account ${id} leaves CONNECTING`,
  );
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

/** Every document of the environment's database, by collection, read directly. */
async function everything(environment: string): Promise<{ collection: string; doc: Record<string, unknown> }[]> {
  const db = d.mongo.db(databaseNames(d.server.config.ROOMKEY_DB_PREFIX).environment(environment));
  const found: { collection: string; doc: Record<string, unknown> }[] = [];
  for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
    for (const doc of await db.collection(name).find({}).toArray()) found.push({ collection: name, doc });
  }
  return found;
}

/** Documents that came from the old incarnation: anything naming its account, and any transition claim. */
async function leftoversOf(environment: string, oldAccountId: string): Promise<string[]> {
  return (await everything(environment))
    .filter(({ collection, doc }) => collection === "transitions" || JSON.stringify(doc).includes(oldAccountId))
    .map(({ collection, doc }) => `${collection}: ${JSON.stringify(doc).slice(0, 160)}`);
}

/**
 * Waits for the old job to end: it says it was discarded (true), or it had
 * `afterAnswerMs` to write (false).
 */
async function oldJobEnded(environment: string, seenBefore: number): Promise<boolean> {
  const discarded = () =>
    log.lines
      .slice(seenBefore)
      .some((line) => line.environment === environment && line.msg.startsWith("job discarded"));
  try {
    await eventually(discarded, afterAnswerMs, "the old job is discarded");
    return true;
  } catch {
    return false;
  }
}

describe("a job of a deleted environment never lands in its successor of the same name", () => {
  it("when a handshake is in flight while its environment is force-deleted and created again, then the new database gets nothing of it", {
    timeout: 120_000,
  }, async () => {
    const leftovers: string[][] = [];
    const discarded: boolean[] = [];
    for (let round = 0; round < rounds; round++) {
      const name = randomEnvironmentName();
      await createEnvironment(name);
      const key = validKey();
      keys.queue({ kind: "slow", delayMs: providerDelayMs });
      const answered = keys.answered();
      const { account } = await d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key: key } } },
        d.admin(name),
      );
      const oldId = account?.id ?? "";
      await eventually(() => keys.callsWith(key) === 1, 10_000, "the handshake reaches the provider");

      const seenBefore = log.lines.length;
      await replaceEnvironment(name);
      await eventually(() => keys.answered() > answered, 10_000, "the provider answers the old handshake");
      discarded.push(await oldJobEnded(name, seenBefore));

      leftovers.push(await leftoversOf(name, oldId));
      // The new incarnation works as any new environment does.
      const { account: fresh } = await d.accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key: validKey() } } },
        d.admin(name),
      );
      expect((await settled(name, fresh?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
    }
    console.log(
      `handshake rounds with documents left in the new database: ${leftovers.filter((l) => l.length > 0).length}/${rounds}`,
    );
    expect(leftovers).toEqual(Array.from({ length: rounds }, () => []));
    expect(discarded).toEqual(Array.from({ length: rounds }, () => true));
  });

  it("when an OAuth code exchange is in flight while its environment is replaced, then the new database gets nothing of it", {
    timeout: 120_000,
  }, async () => {
    const leftovers: string[][] = [];
    const discarded: boolean[] = [];
    for (let round = 0; round < rounds; round++) {
      const name = randomEnvironmentName();
      await createEnvironment(name);
      const started = await d.accounts.unary(
        a.startOAuthConnection,
        { integration: "crm", tenantId: "tenant-1", redirectUri },
        d.admin(name),
      );
      const { code, state } = await oauth.authorize(started.authorizationUrl);
      tokenEndpoint.delayNext(providerDelayMs);
      const received = tokenEndpoint.received();
      const answered = tokenEndpoint.answered();
      const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(name));
      await eventually(() => tokenEndpoint.received() > received, 10_000, "the code exchange reaches the provider");

      const seenBefore = log.lines.length;
      await replaceEnvironment(name);
      await eventually(() => tokenEndpoint.answered() > answered, 10_000, "the provider answers the exchange");
      discarded.push(await oldJobEnded(name, seenBefore));

      leftovers.push(await leftoversOf(name, account?.id ?? ""));
    }
    console.log(
      `exchange rounds with documents left in the new database: ${leftovers.filter((l) => l.length > 0).length}/${rounds}`,
    );
    expect(leftovers).toEqual(Array.from({ length: rounds }, () => []));
    expect(discarded).toEqual(Array.from({ length: rounds }, () => true));
  });

  it("when an OAuth refresh is in flight while its environment is replaced, then the new database gets nothing of it", {
    timeout: 120_000,
  }, async () => {
    const leftovers: string[][] = [];
    const discarded: boolean[] = [];
    for (let round = 0; round < rounds; round++) {
      const name = randomEnvironmentName();
      await createEnvironment(name);
      const started = await d.accounts.unary(
        a.startOAuthConnection,
        { integration: "crm", tenantId: "tenant-1", redirectUri },
        d.admin(name),
      );
      const { code, state } = await oauth.authorize(started.authorizationUrl);
      const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(name));
      const id = account?.id ?? "";
      expect((await settled(name, id))?.status).toBe(AccountStatus.ACTIVE);

      tokenEndpoint.delayNext(providerDelayMs);
      const received = tokenEndpoint.received();
      const answered = tokenEndpoint.answered();
      // Waits for the refresh; the environment goes from under it, so its answer does not matter.
      const refreshing = d.accounts.unary(a.refreshAccountCredentials, { id }, d.admin(name)).catch(() => undefined);
      await eventually(() => tokenEndpoint.received() > received, 10_000, "the refresh reaches the provider");

      const seenBefore = log.lines.length;
      await replaceEnvironment(name);
      await eventually(() => tokenEndpoint.answered() > answered, 10_000, "the provider answers the refresh");
      discarded.push(await oldJobEnded(name, seenBefore));
      await refreshing;

      leftovers.push(await leftoversOf(name, id));
    }
    console.log(
      `refresh rounds with documents left in the new database: ${leftovers.filter((l) => l.length > 0).length}/${rounds}`,
    );
    expect(leftovers).toEqual(Array.from({ length: rounds }, () => []));
    expect(discarded).toEqual(Array.from({ length: rounds }, () => true));
  });

  it("when a job made for an earlier incarnation of the name is queued, then it runs nothing; a job queued before jobs carried an incarnation still runs", async () => {
    const name = randomEnvironmentName();
    await createEnvironment(name);
    const started = await d.accounts.unary(
      a.startOAuthConnection,
      { integration: "crm", tenantId: "tenant-1", redirectUri },
      d.admin(name),
    );
    const { code, state } = await oauth.authorize(started.authorizationUrl);
    const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(name));
    const id = account?.id ?? "";
    expect((await settled(name, id))?.status).toBe(AccountStatus.ACTIVE);
    const control = d.mongo
      .db(databaseNames(d.server.config.ROOMKEY_DB_PREFIX).control)
      .collection<{ _id: string; createTime: Date }>("environments");
    const current = String((await control.findOne({ _id: name }))?.createTime.getTime());
    const accounts = d.mongo
      .db(databaseNames(d.server.config.ROOMKEY_DB_PREFIX).environment(name))
      .collection<{ _id: string; credentialsVersion: number }>("accounts");
    const versionBefore = (await accounts.findOne({ _id: id }))?.credentialsVersion;
    const rotation = testQueue(d.redis, d.server.config.ROOMKEY_QUEUE_PREFIX, name, "rotation");
    try {
      // As a replica that still knew the previous incarnation of the name would queue it.
      const seenBefore = log.lines.length;
      const requests = tokenEndpoint.received();
      await rotation.addAndWake("refresh-account", { accountId: id, incarnation: String(Number(current) - 60_000) });
      expect(await oldJobEnded(name, seenBefore)).toBe(true);
      expect(tokenEndpoint.received()).toBe(requests);
      expect((await accounts.findOne({ _id: id }))?.credentialsVersion).toBe(versionBefore);

      // As a release before this one queued it: no incarnation, so it works for the current one.
      await rotation.addAndWake("refresh-account", { accountId: id });
      await eventually(
        async () => (await accounts.findOne({ _id: id }))?.credentialsVersion === (versionBefore ?? 0) + 1,
        10_000,
        "the job without an incarnation refreshes the account",
      );
      expect(tokenEndpoint.received()).toBe(requests + 1);
    } finally {
      await rotation.close();
    }
  }, 60_000);
});
