import type { Clock } from "../clock.js";
import { DecryptionError } from "../crypto/envelope.js";
import { RoomkeyError } from "../errors.js";
import type { DataKeySource } from "../integration-service.js";
import type { Integration } from "../integrations.js";
import type { AccountEvents, AccountStore } from "./account-service.js";
import { openCredential } from "./account-service.js";
import { type Account, type Credential, toAccountView } from "./accounts.js";
import type { CheckOutcome, CredentialChecker } from "./credential-check.js";

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
  events: AccountEvents;
  clock: Clock;
}

export type HandshakeResult =
  | { outcome: "active" | "failed" }
  /** Nothing to do: the account is gone, past this attempt, or no longer connecting. */
  | { outcome: "skipped"; why: string };

export type Handshakes = ReturnType<typeof createHandshakes>;

/**
 * The handshake worker's domain: checks an account's credential with the
 * provider and moves it from CONNECTING to ACTIVE or FAILED exactly once (a
 * version-checked write; a second run finds it no longer connecting).
 */
export function createHandshakes(deps: HandshakeDeps) {
  const { store, integrations, keys, checker, events, clock } = deps;

  /** Writes the outcome over the account as it is now: a concurrent label change must not lose it. */
  async function finish(
    environment: string,
    read: Account,
    changes: Partial<Account>,
    unset: (keyof Account)[] = [],
  ): Promise<HandshakeResult> {
    let account: Account | undefined = read;
    for (let tries = 0; tries < 5 && account; tries++) {
      if (account.status !== "connecting" || account.handshake.attempt !== read.handshake.attempt) break;
      const after = await store.update(environment, account, { ...changes, updateTime: clock.now() }, unset);
      if (after) {
        await events.publish(environment, {
          account: toAccountView(after),
          previousStatus: account.status,
          eventTime: after.updateTime,
        });
        return { outcome: after.status === "active" ? "active" : "failed" };
      }
      account = await store.get(environment, read.id);
    }
    if (account && account.status === "connecting" && account.handshake.attempt === read.handshake.attempt) {
      // Still ours but always changed under us: let BullMQ run the job again.
      throw new ProviderUnavailableError("the account kept changing during its handshake");
    }
    return { outcome: "skipped", why: "another writer ended this handshake first" };
  }

  function fail(environment: string, account: Account, reason: string): Promise<HandshakeResult> {
    // A credential the provider refused is not kept.
    return finish(environment, account, { status: "failed", statusReason: reason, credentials: {} });
  }

  async function credentialOf(environment: string, account: Account): Promise<Credential> {
    const key = await keys.dataKey(environment);
    const opened = (field: "api_key" | "username" | "password") => {
      const sealed = account.credentials[field];
      if (sealed === undefined) throw new DecryptionError();
      return openCredential(key, environment, account.id, field, sealed);
    };
    return account.authType === "basic"
      ? { kind: "basic", username: opened("username"), password: opened("password") }
      : { kind: "api_key", apiKey: opened("api_key") };
  }

  /**
   * Runs one attempt of the handshake `attempt` of an account. `lastTry`:
   * BullMQ will not run this job again, so a provider that is still
   * unavailable fails the account instead of throwing.
   */
  async function run(
    environment: string,
    accountId: string,
    attempt: number,
    options: { lastTry: boolean },
  ): Promise<HandshakeResult> {
    const account = await store.get(environment, accountId);
    if (!account) return { outcome: "skipped", why: "no such account in this environment" };
    if (account.handshake.attempt !== attempt)
      return { outcome: "skipped", why: "a newer handshake replaced this one" };
    if (account.status !== "connecting") return { outcome: "skipped", why: `the account is ${account.status}` };

    const integration = await integrations.get(environment, account.integration);
    if (!integration) return fail(environment, account, `integration "${account.integration}" no longer exists`);
    if (integration.authType !== account.authType) {
      return fail(environment, account, `integration "${account.integration}" now uses another auth type`);
    }
    let credential: Credential;
    try {
      credential = await credentialOf(environment, account);
    } catch (error) {
      if (error instanceof DecryptionError) return fail(environment, account, "the stored credential does not open");
      throw error;
    }
    const outcome: CheckOutcome = await checker.check(integration.credentialCheck, credential);
    switch (outcome.kind) {
      case "ok":
        return finish(environment, account, {
          status: "active",
          statusReason: "",
          remoteId: outcome.remoteId,
          remoteName: outcome.remoteName,
        });
      case "refused":
        return fail(environment, account, outcome.reason);
      case "unavailable":
        if (options.lastTry) return fail(environment, account, `gave up: ${outcome.reason}`);
        throw new ProviderUnavailableError(outcome.reason, outcome.retryAfterMs);
    }
  }

  /** Fails an account still CONNECTING in `attempt` (its job failed for good); otherwise changes nothing. */
  async function abandon(environment: string, accountId: string, attempt: number, reason: string): Promise<void> {
    const account = await store.get(environment, accountId);
    if (account?.status !== "connecting" || account.handshake.attempt !== attempt) return;
    await fail(environment, account, reason);
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
  /** Queues the handshake again, replacing a job of the same attempt that ended. */
  requeue(environment: string, accountId: string, attempt: number): Promise<void>;
  /** Ends an account whose job failed for good on something unexpected (it re-reads first). */
  failStuck(environment: string, accountId: string, attempt: number, reason: string): Promise<void>;
  clock: Clock;
  /** Accounts unchanged for less than this are left alone: their job may still be on its way. */
  graceMs: number;
}

export function createConnectingSweep(deps: ConnectingSweepDeps) {
  return async (environment: string): Promise<{ requeued: number; failed: number }> => {
    const before = new Date(deps.clock.now().getTime() - deps.graceMs);
    let requeued = 0;
    let failed = 0;
    for (const account of await deps.listConnecting(environment, before)) {
      const { id, handshake } = account;
      const state = await deps.jobState(environment, id, handshake.attempt);
      if (state === "missing" || state === "completed") {
        // Lost from Redis (or ended as the account changed under it): the handshake runs again.
        await deps.requeue(environment, id, handshake.attempt);
        requeued++;
      } else if (state === "failed") {
        await deps.failStuck(environment, id, handshake.attempt, "the handshake failed unexpectedly; connect again");
        failed++;
      }
    }
    return { requeued, failed };
  };
}
