/**
 * Redis and FerretDB taken away under load: killed (SIGKILL) and restarted,
 * and Redis emptied (FLUSHALL). The process must stay up, answer with the
 * right codes, lose and duplicate nothing, and finish every account.
 */
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { metadataFor } from "../helpers/clients.js";
import {
  admin,
  fmt,
  keyedEnvironment,
  load,
  type Outcome,
  Recorder,
  type Roomkey,
  type Stack,
  serving,
  sleep,
  until,
} from "./harness.js";

const a = AccountService.method;
const terminal = new Set([AccountStatus.ACTIVE, AccountStatus.FAILED]);

/** An environment with the keyed integration and a token for the load, its cache warm. */
async function prepare(roomkey: Roomkey, stack: Stack, environment: string) {
  await keyedEnvironment(roomkey, stack, environment);
  const created = await roomkey.tokens.unary(
    TokenService.method.createToken,
    { name: "load", scopes: ["environment:read", "tokens:verify", "accounts:read", "accounts:write"] },
    admin(roomkey, environment),
  );
  const token = metadataFor(environment, created.secret);
  await roomkey.environments.unary(EnvironmentService.method.getEnvironment, {}, token);
  return { token, secret: created.secret };
}

/**
 * ConnectAccount calls, each with its own idempotency key, remembered: the
 * accounts answered OK, and the keys to retry once the fault is over.
 */
function connector(roomkey: Roomkey, stack: Stack, environment: string, token: ReturnType<typeof metadataFor>) {
  /** Idempotency key -> the account id and tenant an OK answer gave. */
  const ok = new Map<string, { id: string; tenant: string }>();
  const failed = new Set<string>();
  let made = 0;
  async function connect(key: string, tenant: string): Promise<number> {
    const apiKey = `sk_${key}`;
    stack.provider.allow(apiKey, { id: `remote-${key}`, name: key });
    try {
      const { account } = await roomkey.accounts.unary(
        a.connectAccount,
        {
          integration: "keyed",
          tenantId: tenant,
          idempotencyKey: key,
          credential: { case: "apiKey", value: { key: apiKey } },
        },
        token,
      );
      ok.set(key, { id: account?.id ?? "", tenant });
      failed.delete(key);
      return 0;
    } catch (error) {
      failed.add(key);
      return (error as { code?: number }).code ?? -1;
    }
  }
  return {
    ok,
    connect,
    next: (tenant: string) => connect(`${tenant}-${made++}`, tenant),
    /** Retries every key of the tenant that failed, with the same key: a repeat must return the same account. */
    async retryFailed(tenant: string) {
      const keys = [...failed].filter((key) => key.startsWith(`${tenant}-`));
      for (let i = 0; i < keys.length; i += 8) {
        await Promise.all(keys.slice(i, i + 8).map((key) => connect(key, tenant)));
      }
      return failed.size;
    },
    /** Accounts of the tenant as listed, and how many ids appear more than once per key. */
    async audit(tenant: string) {
      const listed: string[] = [];
      let pageToken = "";
      do {
        const page = await roomkey.accounts.unary(
          a.listAccounts,
          { tenantId: tenant, pageSize: 100, pageToken },
          admin(roomkey, environment),
        );
        listed.push(...page.accounts.map((x) => x.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const answered = new Set([...ok.values()].filter((x) => x.tenant === tenant).map((x) => x.id));
      const lost = [...answered].filter((id) => !listed.includes(id)).length;
      const duplicated = listed.length - new Set(listed).size + listed.filter((id) => !answered.has(id)).length;
      return { listed: listed.length, lost, duplicated };
    },
    /** Milliseconds until every answered account is ACTIVE or FAILED, or undefined. */
    async settled(timeoutMs: number) {
      return until(
        async () => {
          for (const { id } of ok.values()) {
            const answer = await roomkey.accounts
              .unary(a.getAccount, { id }, admin(roomkey, environment))
              .catch(() => undefined);
            if (!answer?.account || !terminal.has(answer.account.status)) return false;
          }
          return true;
        },
        timeoutMs,
        250,
      );
    },
  };
}

/** Redis killed for 8 s under load, then restarted empty (no persistence): a restart and a data loss at once. */
export async function redisKilled(roomkey: Roomkey, stack: Stack): Promise<Outcome> {
  const environment = "fault-redis";
  const { token, secret } = await prepare(roomkey, stack, environment);
  const accounts = connector(roomkey, stack, environment, token);
  const recorder = new Recorder();
  const traffic = load(6, async (lane, i) => {
    const kind = i % 4;
    if (kind === 0)
      return recorder.time(() => roomkey.tokens.unary(TokenService.method.verifyToken, { token: secret }, token));
    if (kind === 1)
      return recorder.time(() => roomkey.environments.unary(EnvironmentService.method.getEnvironment, {}, token));
    if (kind === 2) {
      const started = performance.now();
      const code = await accounts.next(`r${lane}`);
      recorder.record(code, performance.now() - started);
      return code;
    }
    return recorder.time(() => roomkey.accounts.unary(a.listAccounts, { pageSize: 5 }, token));
  });
  await sleep(2_000);
  recorder.phase = "outage";
  await stack.redis.stop();
  const downAt = Date.now();
  const notServing = await until(async () => (await serving(roomkey)) === false, 10_000);
  await sleep(Math.max(0, 8_000 - (Date.now() - downAt)));
  await stack.redis.start();
  const back = Date.now();
  recorder.phase = "after";
  const servingAgain = await until(async () => (await serving(roomkey)) === true, 30_000);
  await sleep(2_000);
  await traffic.stop();
  const settled = await accounts.settled(90_000);
  const settledAfterReturn = settled === undefined ? undefined : Date.now() - back;
  for (let lane = 0; lane < 6; lane++) await accounts.retryFailed(`r${lane}`);
  let lost = 0;
  let duplicated = 0;
  for (let lane = 0; lane < 6; lane++) {
    const audit = await accounts.audit(`r${lane}`);
    lost += audit.lost;
    duplicated += audit.duplicated;
  }
  const internal = recorder.total("INTERNAL");
  const ok =
    roomkey.alive() &&
    internal === 0 &&
    settled !== undefined &&
    lost === 0 &&
    duplicated === 0 &&
    servingAgain !== undefined;
  return {
    name: "Redis SIGKILL and restart (empty) under load",
    ok,
    figures:
      `process up: ${roomkey.alive()}; NOT_SERVING ${fmt(notServing)} after the kill, SERVING ${fmt(servingAgain)} after the restart; ` +
      `during the outage ${JSON.stringify(recorder.histogram("outage"))}, p99 ${fmt(recorder.percentile("outage", 0.99))}; ` +
      `${accounts.ok.size} accounts answered OK, all ACTIVE/FAILED ${fmt(settledAfterReturn)} after Redis returned; ` +
      `lost ${lost}, duplicated ${duplicated}, INTERNAL ${internal}`,
  };
}

/** FLUSHALL under load with Redis up: jobs, wake entries, the fleet and everything else in Redis gone at once. */
export async function redisFlushed(roomkey: Roomkey, stack: Stack, flush: () => Promise<unknown>): Promise<Outcome> {
  const environment = "fault-flush";
  const { token } = await prepare(roomkey, stack, environment);
  const accounts = connector(roomkey, stack, environment, token);
  const recorder = new Recorder();
  // Slow handshakes, so that jobs are queued and running when Redis is emptied.
  stack.provider.always({ kind: "slow", delayMs: 300 });
  const traffic = load(4, async (lane) => {
    const started = performance.now();
    const code = await accounts.next(`f${lane}`);
    recorder.record(code, performance.now() - started);
    return code;
  });
  await sleep(2_000);
  await flush();
  const flushed = Date.now();
  recorder.phase = "after";
  await sleep(2_000);
  await traffic.stop();
  stack.provider.always(undefined);
  const settled = await accounts.settled(90_000);
  const settledAfterFlush = settled === undefined ? undefined : Date.now() - flushed;
  let lost = 0;
  let duplicated = 0;
  for (let lane = 0; lane < 4; lane++) {
    await accounts.retryFailed(`f${lane}`);
    const audit = await accounts.audit(`f${lane}`);
    lost += audit.lost;
    duplicated += audit.duplicated;
  }
  const internal = recorder.total("INTERNAL");
  return {
    name: "Redis data loss (FLUSHALL) under load",
    ok: roomkey.alive() && settled !== undefined && lost === 0 && duplicated === 0 && internal === 0,
    figures:
      `process up: ${roomkey.alive()}; ${accounts.ok.size} accounts (some with jobs queued or running at the flush) ` +
      `all ACTIVE/FAILED ${fmt(settledAfterFlush)} after the flush; ConnectAccount answers before ${JSON.stringify(recorder.histogram("before"))}, after ${JSON.stringify(recorder.histogram("after"))}; ` +
      `lost ${lost}, duplicated ${duplicated}, INTERNAL ${internal}`,
  };
}

/** FerretDB killed for 10 s under load: calls that need it fail fast once health knows, cached tokens keep working. */
export async function ferretKilled(roomkey: Roomkey, stack: Stack): Promise<Outcome> {
  const environment = "fault-ferret";
  const { token, secret } = await prepare(roomkey, stack, environment);
  const verify = metadataFor(environment, secret);
  const accounts = connector(roomkey, stack, environment, token);
  const recorder = new Recorder();
  const database = new Recorder();
  const cached = new Recorder();
  const traffic = load(6, async (lane, i) => {
    const kind = i % 3;
    if (kind === 0) {
      return cached.time(
        () => roomkey.tokens.unary(TokenService.method.verifyToken, { token: secret }, verify, { deadlineMs: 5_000 }),
        recorder.phase,
      );
    }
    if (kind === 1) {
      return database.time(
        () => roomkey.accounts.unary(a.listAccounts, { pageSize: 5 }, token, { deadlineMs: 5_000 }),
        recorder.phase,
      );
    }
    const started = performance.now();
    const code = await accounts.next(`m${lane}`);
    database.record(code, performance.now() - started, recorder.phase);
    return code;
  });
  await sleep(2_000);
  recorder.phase = "detecting";
  await stack.ferret.stop();
  const killed = Date.now();
  const notServing = await until(async () => (await serving(roomkey)) === false, 15_000);
  recorder.phase = "known down";
  await sleep(Math.max(0, 10_000 - (Date.now() - killed)));
  recorder.phase = "restarting";
  await stack.ferret.start();
  const servingAgain = await until(async () => (await serving(roomkey)) === true, 30_000);
  recorder.phase = "after";
  await sleep(2_000);
  await traffic.stop();
  let lost = 0;
  let duplicated = 0;
  for (let lane = 0; lane < 6; lane++) await accounts.retryFailed(`m${lane}`);
  for (let lane = 0; lane < 6; lane++) {
    const audit = await accounts.audit(`m${lane}`);
    lost += audit.lost;
    duplicated += audit.duplicated;
  }
  const settled = await accounts.settled(60_000);
  const down = "known down";
  const internal = database.total("INTERNAL") + cached.total("INTERNAL");
  const failFastP99 = database.percentile(down, 0.99);
  const cachedOk = cached.count(down, "OK");
  const cachedAll = Object.values(cached.histogram(down)).reduce((s, n) => s + n, 0);
  return {
    name: "FerretDB SIGKILL and restart under load",
    ok:
      roomkey.alive() &&
      internal === 0 &&
      lost === 0 &&
      duplicated === 0 &&
      settled !== undefined &&
      cachedOk === cachedAll,
    target: failFastP99 < 100,
    figures:
      `process up: ${roomkey.alive()}; NOT_SERVING ${fmt(notServing ?? undefined)} after the kill; once known down, calls needing it ` +
      `${JSON.stringify(database.histogram(down))} p50 ${fmt(database.percentile(down, 0.5))} p99 ${fmt(failFastP99)} (target < 100 ms); ` +
      `cached VerifyToken ${cachedOk}/${cachedAll} OK; SERVING ${fmt(servingAgain)} after FerretDB answered again; ` +
      `lost ${lost}, duplicated ${duplicated} (failed ConnectAccounts retried with their idempotency keys), INTERNAL ${internal}`,
  };
}
