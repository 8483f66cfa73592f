import type { Clock } from "../clock.js";
import { DecryptionError, open } from "../crypto/envelope.js";
import { ConcurrentModificationError } from "../errors.js";
import { clientSecretBinding } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import type { DataKeySource } from "../integrations/ports.js";
import { openCredential } from "./account-common.js";
import type { Account, SealedCredentials, UpstreamRevocation } from "./accounts.js";
import { type JobScope, ProviderUnavailableError } from "./handshake.js";
import type { OAuthRevocationClient, RevocableTokenType } from "./oauth.js";
import type { AccountStore, RevocationQueue } from "./ports.js";

export interface UpstreamRevocationDeps {
  store: Pick<AccountStore, "get" | "update">;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  oauth: OAuthRevocationClient;
  clock: Clock;
}

export type UpstreamRevocationResult =
  /** The provider revoked every token (or no longer knew them); the tokens are wiped. */
  | { outcome: "done" }
  /** The provider refused, stayed unavailable through every attempt, or the tokens could not be sent; wiped all the same. */
  | { outcome: "failed"; reason: string }
  /** Nothing to do: no such account, or no revocation pending on it. */
  | { outcome: "skipped"; why: string };

export type UpstreamRevocations = ReturnType<typeof createUpstreamRevocations>;

/**
 * The refresh token first: it is the one that outlives a deletion (an access
 * token expires on its own), and many providers end the access tokens issued
 * with it too.
 */
const revocationOrder: readonly RevocableTokenType[] = ["refresh_token", "access_token"];

const tokenNames: Readonly<Record<RevocableTokenType, string>> = {
  refresh_token: "refresh token",
  access_token: "access token",
};

/** Whether two sets of sealed tokens are the same ciphertexts (a new DeleteAccount seals anew). */
function sameTokens(a: SealedCredentials | undefined, b: SealedCredentials | undefined): boolean {
  return revocationOrder.every((field) => a?.[field] === b?.[field]);
}

/**
 * The rotation worker's revocation of a deleted account's tokens at its
 * provider (RFC 7009). DeleteAccount leaves the tokens sealed on the account
 * with the revocation pending; this job sends them, then writes the outcome
 * and wipes them. A provider that cannot answer leaves the revocation pending
 * (with the attempt counted) and throws, so that BullMQ tries again with
 * backoff; on the job's last try it gives up and wipes the tokens all the
 * same. Each write is version-checked over the account as it is now, so a
 * concurrent change (labels, a re-authorization) is never lost.
 */
export function createUpstreamRevocations(deps: UpstreamRevocationDeps) {
  const { store, integrations, keys, oauth, clock } = deps;

  /**
   * Writes the next state of the revocation over the account as it is now,
   * while the revocation read is still pending with the same tokens:
   * undefined if it ended meanwhile (another run of this job). Tokens sealed
   * anew mean another DeleteAccount began a new revocation (the account was
   * re-authorized and deleted again): this run throws, and its retry sends
   * those instead.
   */
  async function record(
    { environment, incarnation }: JobScope,
    read: Account,
    next: (current: UpstreamRevocation, now: Date) => UpstreamRevocation,
  ): Promise<Account | undefined> {
    let account: Account | undefined = read;
    for (let tries = 0; tries < 5 && account; tries++) {
      const current = account.upstreamRevocation;
      if (current?.status !== "pending") return undefined;
      if (!sameTokens(current.tokens, read.upstreamRevocation?.tokens)) {
        throw new ConcurrentModificationError(`the upstream revocation of account "${read.id}"`);
      }
      const now = clock.now();
      // The whole object is written: a revocation that ended has no `tokens` any more.
      const after = await store.update(
        environment,
        account,
        { upstreamRevocation: next(current, now), updateTime: now },
        [],
        incarnation,
      );
      if (after) return after;
      account = await store.get(environment, read.id);
    }
    if (!account) return undefined;
    throw new ConcurrentModificationError(`account "${read.id}"`);
  }

  /** Ends the revocation as failed (tokens wiped); `attempted`: the provider was asked in this run. */
  async function fail(
    scope: JobScope,
    read: Account,
    reason: string,
    attempted: boolean,
  ): Promise<UpstreamRevocationResult> {
    const after = await record(scope, read, (current, now) => ({
      status: "failed",
      attempts: current.attempts + (attempted ? 1 : 0),
      lastError: reason,
      updateTime: now,
    }));
    return after ? { outcome: "failed", reason } : { outcome: "skipped", why: "the revocation ended meanwhile" };
  }

  async function done(scope: JobScope, read: Account, attempted: boolean): Promise<UpstreamRevocationResult> {
    const after = await record(scope, read, (current, now) => ({
      status: "done",
      attempts: current.attempts + (attempted ? 1 : 0),
      lastError: "",
      updateTime: now,
    }));
    return after ? { outcome: "done" } : { outcome: "skipped", why: "the revocation ended meanwhile" };
  }

  /**
   * Runs one attempt of the revocation of an account's tokens. `lastTry`:
   * BullMQ will not run this job again, so a provider still unavailable ends
   * the revocation as failed instead of throwing. With an `incarnation`,
   * nothing is opened or written once the environment is another
   * incarnation (EnvironmentReplacedError). Never logs or returns a token.
   */
  async function run(
    environment: string,
    accountId: string,
    options: { lastTry: boolean; incarnation?: string },
  ): Promise<UpstreamRevocationResult> {
    const { incarnation } = options;
    const scope: JobScope = { environment, ...(incarnation === undefined ? {} : { incarnation }) };
    const read = await store.get(environment, accountId);
    if (!read) return { outcome: "skipped", why: "no such account in this environment" };
    const revocation = read.upstreamRevocation;
    if (revocation?.status !== "pending") {
      return { outcome: "skipped", why: `no revocation pending (${revocation?.status ?? "none"})` };
    }
    const sealed = revocationOrder.flatMap((type) => {
      const token = revocation.tokens?.[type];
      return token === undefined ? [] : [{ type, token }];
    });
    if (sealed.length === 0) return done(scope, read, false);

    const integration = await integrations.get(environment, read.integration);
    const settings = integration?.oauth2;
    if (!integration) return fail(scope, read, `integration "${read.integration}" no longer exists`, false);
    if (!settings?.revocationUrl) {
      return fail(scope, read, `integration "${read.integration}" no longer has a revocation_url`, false);
    }
    if (!settings.sealedClientSecret) {
      return fail(scope, read, `integration "${read.integration}" has no client secret`, false);
    }
    const key = await keys.dataKey(environment, incarnation);
    let clientSecret: string;
    try {
      clientSecret = open(
        key,
        settings.sealedClientSecret,
        clientSecretBinding(environment, integration.name),
      ).toString("utf8");
    } catch (error) {
      if (error instanceof DecryptionError) {
        return fail(scope, read, `the client secret of integration "${integration.name}" does not open`, false);
      }
      throw error;
    }
    let tokens: { type: RevocableTokenType; token: string }[];
    try {
      tokens = sealed.map(({ type, token }) => ({
        type,
        token: openCredential(key, environment, read.id, type, token),
      }));
    } catch (error) {
      if (error instanceof DecryptionError) return fail(scope, read, "the stored tokens do not open", false);
      throw error;
    }

    const revoked = new Set<RevocableTokenType>();
    for (const { type, token } of tokens) {
      const outcome = await oauth.revoke(settings, clientSecret, token, type);
      // RFC 7009 section 2.2.1: a provider that cannot revoke this type of token (an access token that is
      // self-contained, say) has nothing to revoke; the other token's revocation stands.
      if (outcome.kind === "ok" || (outcome.kind === "refused" && outcome.error === "unsupported_token_type")) {
        revoked.add(type);
        continue;
      }
      const reason = `revoking the ${tokenNames[type]}: ${outcome.reason}`;
      if (outcome.kind === "refused") return fail(scope, read, reason, true);
      if (options.lastTry) return fail(scope, read, `gave up: ${reason}`, true);
      // What was revoked is not sent again: only the rest waits for the next attempt.
      const after = await record(scope, read, (current, now) => {
        const left: SealedCredentials = { ...current.tokens };
        for (const type of revoked) delete left[type];
        return { status: "pending", attempts: current.attempts + 1, lastError: reason, updateTime: now, tokens: left };
      });
      if (!after) return { outcome: "skipped", why: "the revocation ended meanwhile" };
      throw new ProviderUnavailableError(reason, outcome.retryAfterMs);
    }
    return done(scope, read, true);
  }

  return { run };
}

/** Revocations a sweep queues at once. */
const revocationSweepParallelism = 16;

export interface RevocationSweepDeps {
  /** Disconnected accounts whose revocation is pending and unchanged since `updatedBefore`. */
  listPendingRevocations(environment: string, updatedBefore: Date): Promise<Account[]>;
  revocations: RevocationQueue;
  clock: Clock;
  /** Revocations unchanged for less than this are left alone: their job may still be on its way. */
  graceMs: number;
}

/**
 * Queues again the revocations a job was lost for (Redis refused it at
 * DeleteAccount, lost it, or it failed on something unexpected): a pending
 * revocation never waits forever. Its job id is one per account, so a job
 * still queued or waiting out its backoff absorbs the new one.
 */
export function createRevocationSweep(deps: RevocationSweepDeps) {
  return async (environment: string, incarnation?: string): Promise<{ requeued: number }> => {
    const before = new Date(deps.clock.now().getTime() - deps.graceMs);
    const pending = await deps.listPendingRevocations(environment, before);
    for (let i = 0; i < pending.length; i += revocationSweepParallelism) {
      await Promise.all(
        pending
          .slice(i, i + revocationSweepParallelism)
          .map((account) => deps.revocations.enqueue(environment, account.id, incarnation)),
      );
    }
    return { requeued: pending.length };
  };
}
