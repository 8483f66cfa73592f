import type { Clock } from "../clock.js";
import { DecryptionError, open } from "../crypto/envelope.js";
import { RoomkeyError } from "../errors.js";
import { clientSecretBinding } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import type { DataKeySource } from "../integrations/ports.js";
import { openCredential, sealCredentials } from "./account-common.js";
import { type Account, type AccountEvent, type CredentialField, toAccountView } from "./accounts.js";
import type { CheckCredential, CheckOutcome, CredentialChecker } from "./credential-check.js";
import type { OAuthClient, OAuthTokens } from "./oauth.js";
import type { AccountEvents, AccountStore } from "./ports.js";

/**
 * The provider cannot answer now: the job is retried with backoff, after
 * `retryAfterMs` when the provider said (429 `Retry-After`).
 */
export class ProviderUnavailableError extends RoomkeyError {
  override readonly name = "ProviderUnavailableError";
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super("unavailable", "PROVIDER_UNAVAILABLE", message);
  }
}

export interface HandshakeDeps {
  store: Pick<AccountStore, "get" | "update">;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  checker: CredentialChecker;
  oauth: OAuthClient;
  events: AccountEvents;
  clock: Clock;
  /**
   * How a write waits for a transition another run claimed and has not written (see
   * AccountStore.update): it tries again every `retryMs`, for at most `patienceMs`; after
   * `changedLimit` writes refused because the account really changed, the attempt fails
   * (src/queue/retry-policy.ts has the numbers).
   */
  writeRetries: { retryMs: number; patienceMs: number; changedLimit: number };
  /**
   * Told again of a handshake's outcome that is already written, when a run
   * finds its attempt ended (the run that wrote it may have died before it
   * told anyone). Must be safe to repeat: webhooks, whose event id comes from
   * the attempt.
   */
  retell?(environment: string, event: AccountEvent): Promise<void>;
}

/**
 * Where one job works: its environment (from its queue) and, when the job
 * carries one, the incarnation it was made for. Every key it uses and every
 * write it makes is bound to that incarnation.
 */
export interface JobScope {
  environment: string;
  incarnation?: string;
}

export type HandshakeResult =
  | { outcome: "active" | "failed" }
  /** Nothing to do: the account is gone, past this attempt, or no longer connecting. */
  | { outcome: "skipped"; why: string };

export type Handshakes = ReturnType<typeof createHandshakes>;

/** Sealed OAuth tokens as stored with an account, and the fields that go with them. */
export function tokenChanges(
  key: Buffer,
  environment: string,
  account: Account,
  tokens: OAuthTokens,
  now: Date,
  fallback: { scopes: string[]; refreshToken?: string },
): { changes: Partial<Account>; unset: (keyof Account)[] } {
  const refreshToken = tokens.refreshToken ?? fallback.refreshToken;
  const changes: Partial<Account> = {
    credentials: sealCredentials(key, environment, account.id, {
      access_token: tokens.accessToken,
      ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
    }),
    credentialsVersion: account.credentialsVersion + 1,
    tokenType: tokens.tokenType,
    scopes: tokens.scopes ?? fallback.scopes,
    lastRefreshTime: now,
  };
  if (tokens.expiresInMs === undefined) return { changes, unset: ["credentialsExpireTime"] };
  changes.credentialsExpireTime = new Date(now.getTime() + tokens.expiresInMs);
  return { changes, unset: [] };
}

/**
 * The handshake worker's domain: checks an account's credential with the
 * provider (exchanging an OAuth code first) and moves it from CONNECTING to
 * ACTIVE or FAILED exactly once (a version-checked write; a second run finds
 * it no longer connecting).
 */
export function createHandshakes(deps: HandshakeDeps) {
  const { store, integrations, keys, checker, oauth, events, clock } = deps;
  const held = deps.writeRetries;

  /**
   * Writes `changes` over the account as it is now, as long as it is still
   * CONNECTING in the same attempt: a concurrent label change must not lose
   * them. Undefined if another writer ended this handshake.
   *
   * A write refused while the account reads unchanged means that another run
   * of this handshake claimed this very transition and has not written it:
   * the claim carries that run's outcome and no other write can land before
   * it, so this run waits for it instead of failing. Failing would make BullMQ
   * run the job again, asking the provider again on every attempt for an
   * answer that can never be written (a worker killed between the claim and
   * the write cost 8 provider calls and the job).
   */
  async function writeOwn(
    { environment, incarnation }: JobScope,
    read: Account,
    changes: Partial<Account>,
    unset: (keyof Account)[] = [],
  ): Promise<Account | undefined> {
    let account: Account | undefined = read;
    let changedUnder = 0;
    let heldFor = 0;
    while (account && account.status === "connecting" && account.handshake.attempt === read.handshake.attempt) {
      if (changedUnder >= held.changedLimit) {
        // Still ours but always changed under us: let BullMQ run the job again.
        throw new ProviderUnavailableError("the account kept changing during its handshake");
      }
      if (heldFor >= held.patienceMs) {
        throw new ProviderUnavailableError(`another run of this handshake held the account for ${heldFor} ms`);
      }
      const after = await store.update(
        environment,
        account,
        { ...changes, updateTime: clock.now() },
        unset,
        incarnation,
      );
      if (after) return after;
      const now = await store.get(environment, read.id);
      if (now?.version === account.version) {
        await new Promise((resolve) => setTimeout(resolve, held.retryMs));
        heldFor += held.retryMs;
      } else {
        changedUnder++;
      }
      account = now;
    }
    return undefined;
  }

  /** The status change a handshake's outcome is: CONNECTING to ACTIVE or FAILED, in its attempt. */
  function outcomeEvent(account: Account): AccountEvent {
    const { attempt, startTime, reauthorizedFrom } = account.handshake;
    return {
      account: toAccountView(account),
      previousStatus: "connecting",
      eventTime: account.updateTime,
      handshake: { attempt, startTime },
      ...(reauthorizedFrom ? { reauthorizedFrom } : {}),
    };
  }

  /** When the account's handshake `attempt` has ended, tells its outcome again (see HandshakeDeps.retell). */
  async function retellIfEnded(environment: string, account: Account | undefined, attempt: number): Promise<void> {
    if (!deps.retell || account?.handshake.attempt !== attempt) return;
    // Its outcome: ACTIVE or FAILED, or, for a failed re-authorization, the status it went back to.
    if (account.status === "active" || account.status === "failed" || account.handshake.reauthorizationFailed) {
      await deps.retell(environment, outcomeEvent(account));
    }
  }

  async function finish(
    scope: JobScope,
    read: Account,
    changes: Partial<Account>,
    unset: (keyof Account)[] = [],
  ): Promise<HandshakeResult> {
    const after = await writeOwn(scope, read, changes, unset);
    if (!after) {
      // Perhaps a run that died after claiming this outcome, whose claim a later write finished.
      await retellIfEnded(scope.environment, await store.get(scope.environment, read.id), read.handshake.attempt);
      return { outcome: "skipped", why: "another writer ended this handshake first" };
    }
    await events.publish(scope.environment, outcomeEvent(after));
    return { outcome: after.status === "active" ? "active" : "failed" };
  }

  /**
   * Ends the handshake FAILED, dropping the credential the provider refused.
   * A re-authorization instead puts back what it set aside: the account
   * returns to the status it had, with its old credentials, and says why the
   * new one failed.
   */
  function fail(scope: JobScope, account: Account, reason: string): Promise<HandshakeResult> {
    const { held } = account;
    if (!held) return finish(scope, account, { status: "failed", statusReason: reason, credentials: {} });
    const from = account.handshake.reauthorizedFrom;
    const changes: Partial<Account> = {
      status: from === undefined || from === "connecting" ? "failed" : from,
      statusReason: `re-authorization failed: ${reason}`,
      credentials: held.credentials,
      credentialsVersion: account.credentialsVersion + 1,
      // Told apart from a success: an ACTIVE account whose new key failed is not "connected again".
      handshake: { ...account.handshake, reauthorizationFailed: true },
    };
    const unset: (keyof Account)[] = ["held"];
    for (const field of ["credentialsExpireTime", "lastRefreshTime", "tokenType", "scopes"] as const) {
      const value = held[field];
      if (value === undefined) unset.push(field);
      else Object.assign(changes, { [field]: value });
    }
    return finish(scope, account, changes, unset);
  }

  function opener(key: Buffer, environment: string, account: Account) {
    return (field: CredentialField): string => {
      const sealed = account.credentials[field];
      if (sealed === undefined) throw new DecryptionError();
      return openCredential(key, environment, account.id, field, sealed);
    };
  }

  /**
   * OAuth: exchanges the pending code and saves the tokens before anything
   * else, so a run cut short after the exchange never exchanges the code
   * again (the provider would refuse it). A run after that finds tokens.
   */
  async function exchangeIfPending(
    scope: JobScope,
    account: Account,
    integration: Integration,
    options: { lastTry: boolean },
  ): Promise<{ account: Account } | { result: HandshakeResult }> {
    if (account.credentials.authorization_code === undefined) return { account };
    const { environment } = scope;
    const settings = integration.oauth2;
    if (!settings?.sealedClientSecret) {
      return { result: await fail(scope, account, `integration "${integration.name}" has no client secret`) };
    }
    const key = await keys.dataKey(environment, scope.incarnation);
    const opened = opener(key, environment, account);
    const clientSecret = open(
      key,
      settings.sealedClientSecret,
      clientSecretBinding(environment, integration.name),
    ).toString("utf8");
    const outcome = await oauth.exchangeCode(settings, clientSecret, {
      code: opened("authorization_code"),
      redirectUri: account.handshake.redirectUri ?? "",
      ...(account.credentials.code_verifier === undefined ? {} : { codeVerifier: opened("code_verifier") }),
    });
    if (outcome.kind === "refused") return { result: await fail(scope, account, outcome.reason) };
    if (outcome.kind === "unavailable") {
      if (options.lastTry) return { result: await fail(scope, account, `gave up: ${outcome.reason}`) };
      throw new ProviderUnavailableError(outcome.reason, outcome.retryAfterMs);
    }
    const { changes, unset } = tokenChanges(key, environment, account, outcome.tokens, clock.now(), {
      scopes: settings.scopes,
    });
    const saved = await writeOwn(scope, account, changes, unset);
    if (!saved) return { result: { outcome: "skipped", why: "another writer ended this handshake first" } };
    return { account: saved };
  }

  /**
   * Runs one attempt of the handshake `attempt` of an account. `lastTry`:
   * BullMQ will not run this job again, so a provider that is still
   * unavailable fails the account instead of throwing. With an `incarnation`,
   * nothing is written or sealed once the environment is another incarnation
   * (EnvironmentReplacedError).
   */
  async function run(
    environment: string,
    accountId: string,
    attempt: number,
    options: { lastTry: boolean; incarnation?: string },
  ): Promise<HandshakeResult> {
    const scope: JobScope = {
      environment,
      ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
    };
    let account = await store.get(environment, accountId);
    if (!account) return { outcome: "skipped", why: "no such account in this environment" };
    if (account.handshake.attempt !== attempt) {
      return { outcome: "skipped", why: "a newer handshake replaced this one" };
    }
    if (account.status !== "connecting") {
      await retellIfEnded(environment, account, attempt);
      return { outcome: "skipped", why: `the account is ${account.status}` };
    }

    const integration = await integrations.get(environment, account.integration);
    if (!integration) return fail(scope, account, `integration "${account.integration}" no longer exists`);
    if (integration.authType !== account.authType) {
      return fail(scope, account, `integration "${account.integration}" now uses another auth type`);
    }
    let credential: CheckCredential;
    try {
      if (account.authType === "oauth2") {
        const exchanged = await exchangeIfPending(scope, account, integration, options);
        if ("result" in exchanged) return exchanged.result;
        account = exchanged.account;
        const opened = opener(await keys.dataKey(environment, scope.incarnation), environment, account);
        credential = { kind: "access_token", accessToken: opened("access_token") };
      } else {
        const opened = opener(await keys.dataKey(environment, scope.incarnation), environment, account);
        credential =
          account.authType === "basic"
            ? { kind: "basic", username: opened("username"), password: opened("password") }
            : { kind: "api_key", apiKey: opened("api_key") };
      }
    } catch (error) {
      if (error instanceof DecryptionError) return fail(scope, account, "the stored credential does not open");
      throw error;
    }
    const outcome: CheckOutcome = await checker.check(integration.credentialCheck, credential);
    switch (outcome.kind) {
      case "ok":
        // A re-authorization's new credential works: what it set aside goes.
        return finish(
          scope,
          account,
          { status: "active", statusReason: "", remoteId: outcome.remoteId, remoteName: outcome.remoteName },
          account.held ? ["held"] : [],
        );
      case "refused":
        return fail(scope, account, outcome.reason);
      case "unavailable":
        if (options.lastTry) return fail(scope, account, `gave up: ${outcome.reason}`);
        throw new ProviderUnavailableError(outcome.reason, outcome.retryAfterMs);
    }
  }

  /** Fails an account still CONNECTING in `attempt` (its job failed for good); otherwise changes nothing. */
  async function abandon(
    environment: string,
    accountId: string,
    attempt: number,
    reason: string,
    incarnation?: string,
  ): Promise<void> {
    const account = await store.get(environment, accountId);
    if (account?.status !== "connecting" || account.handshake.attempt !== attempt) return;
    await fail({ environment, ...(incarnation === undefined ? {} : { incarnation }) }, account, reason);
  }

  return { run, abandon };
}

/** Finds accounts whose handshake has no live job and queues it again: an account never stays CONNECTING. */
export interface ConnectingSweepDeps {
  listConnecting(environment: string, updatedBefore: Date): Promise<Account[]>;
  /** The state of the handshake job of this attempt in Redis. */
  jobState(
    environment: string,
    accountId: string,
    attempt: number,
  ): Promise<"live" | "completed" | "failed" | "missing">;
  /** Queues the handshake again (bound to `incarnation`), replacing a job of the same attempt that ended. */
  requeue(environment: string, accountId: string, attempt: number, incarnation?: string): Promise<void>;
  /** Ends an account whose job failed for good on something unexpected (it re-reads first). */
  failStuck(
    environment: string,
    accountId: string,
    attempt: number,
    reason: string,
    incarnation?: string,
  ): Promise<void>;
  clock: Clock;
  /** Accounts unchanged for less than this are left alone: their job may still be on its way. */
  graceMs: number;
}

/**
 * Accounts a connecting sweep handles at once. After Redis lost its data
 * every account connected meanwhile needs three round trips (job state,
 * remove, add): one at a time, 150 accounts took 20 s on a loaded machine.
 */
export const connectingSweepParallelism = 16;

export interface ConnectingSweepOptions {
  /**
   * Sweep accounts of any age: asked for once Redis is back after it lost
   * jobs or refused them. A job still on its way is harmless then: it has the
   * same id as the one the sweep queues, so one of the two adds is a no-op.
   */
  noGrace?: boolean;
  /** The incarnation the sweep's job runs for: what it queues and writes is bound to it. */
  incarnation?: string;
}

/** The sweep of one environment. */
export function createConnectingSweep(deps: ConnectingSweepDeps) {
  return async (
    environment: string,
    options: ConnectingSweepOptions = {},
  ): Promise<{ requeued: number; failed: number }> => {
    const { incarnation } = options;
    const before = new Date(deps.clock.now().getTime() - (options.noGrace ? 0 : deps.graceMs));
    let requeued = 0;
    let failed = 0;
    const sweepOne = async ({ id, handshake }: Account) => {
      const state = await deps.jobState(environment, id, handshake.attempt);
      if (state === "missing" || state === "completed") {
        // Lost from Redis (or ended as the account changed under it): the handshake runs again.
        await deps.requeue(environment, id, handshake.attempt, incarnation);
        requeued++;
      } else if (state === "failed") {
        await deps.failStuck(
          environment,
          id,
          handshake.attempt,
          "the handshake failed unexpectedly; connect again",
          incarnation,
        );
        failed++;
      }
    };
    const connecting = await deps.listConnecting(environment, before);
    for (let i = 0; i < connecting.length; i += connectingSweepParallelism) {
      await Promise.all(connecting.slice(i, i + connectingSweepParallelism).map(sweepOne));
    }
    return { requeued, failed };
  };
}
