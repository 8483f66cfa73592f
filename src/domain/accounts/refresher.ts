import type { Clock } from "../clock.js";
import { open } from "../crypto/envelope.js";
import { clientSecretBinding } from "../integrations/integration-service.js";
import type { Integration } from "../integrations/integrations.js";
import type { DataKeySource } from "../integrations/ports.js";
import { openCredential } from "./account-common.js";
import { type Account, toAccountView } from "./accounts.js";
import { type JobScope, ProviderUnavailableError, tokenChanges } from "./handshake.js";
import type { OAuthClient } from "./oauth.js";
import type { AccountEvents, AccountStore, RefreshQueue } from "./ports.js";

export interface RefresherDeps {
  store: Pick<AccountStore, "get" | "update">;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  oauth: OAuthClient;
  events: AccountEvents;
  clock: Clock;
}

export type RefreshResult =
  | { outcome: "refreshed"; credentialsVersion: number }
  | { outcome: "needs_reauth"; reason: string }
  /** Nothing done: not an active OAuth account, no refresh token, or someone else refreshed it. */
  | { outcome: "skipped"; why: string }
  /** The provider stayed unavailable through every attempt; the account keeps its current token. */
  | { outcome: "gave_up"; reason: string };

export type Refresher = ReturnType<typeof createRefresher>;

/**
 * OAuth refreshes, run by the rotation worker with one job id per account so
 * refreshes of one account never overlap. The new tokens are written only
 * over the credentials version that was read; a refused refresh re-reads
 * before it declares NEEDS_REAUTH, since someone else may have refreshed.
 */
export function createRefresher(deps: RefresherDeps) {
  const { store, integrations, keys, oauth, events, clock } = deps;

  /** Declares NEEDS_REAUTH over `current`, unless the credentials moved past `expectedVersion` meanwhile. */
  async function needsReauth(
    { environment, incarnation }: JobScope,
    current: Account | undefined,
    expectedVersion: number,
    reason: string,
  ): Promise<RefreshResult> {
    let account = current;
    for (let tries = 0; tries < 5 && account; tries++) {
      // Someone refreshed (or re-authorized, or deleted) meanwhile: their credentials stand.
      if (account.credentialsVersion !== expectedVersion || account.status !== "active") {
        return { outcome: "skipped", why: "the credentials changed while the refresh ran" };
      }
      const after = await store.update(
        environment,
        account,
        { status: "needs_reauth", statusReason: reason, updateTime: clock.now() },
        [],
        incarnation,
      );
      if (after) {
        await events.publish(environment, {
          account: toAccountView(after),
          previousStatus: account.status,
          eventTime: after.updateTime,
        });
        return { outcome: "needs_reauth", reason };
      }
      account = await store.get(environment, account.id);
    }
    return { outcome: "skipped", why: "the account is gone or kept changing" };
  }

  /**
   * Refreshes one account's tokens. With an `incarnation`, nothing is written
   * or sealed once the environment is another incarnation
   * (EnvironmentReplacedError).
   */
  async function refresh(
    environment: string,
    accountId: string,
    options: { lastTry: boolean; seenVersion?: number; incarnation?: string },
  ): Promise<RefreshResult> {
    const { incarnation } = options;
    const scope: JobScope = { environment, ...(incarnation === undefined ? {} : { incarnation }) };
    const read = await store.get(environment, accountId);
    if (!read) return { outcome: "skipped", why: "no such account in this environment" };
    if (read.authType !== "oauth2" || read.status !== "active") {
      return { outcome: "skipped", why: `the account is ${read.status} (${read.authType})` };
    }
    if (options.seenVersion !== undefined && read.credentialsVersion !== options.seenVersion) {
      // Refreshed (or re-authorized) since it was asked for: what the requester wanted is there.
      return { outcome: "skipped", why: "the credentials changed since the refresh was asked for" };
    }
    const sealedRefresh = read.credentials.refresh_token;
    if (sealedRefresh === undefined) return { outcome: "skipped", why: "the provider gave no refresh token" };
    const integration = await integrations.get(environment, read.integration);
    const settings = integration?.oauth2;
    if (!integration || !settings?.sealedClientSecret) {
      const reason = `integration "${read.integration}" is gone or has no client secret`;
      return needsReauth(scope, read, read.credentialsVersion, reason);
    }
    const key = await keys.dataKey(environment, incarnation);
    const refreshToken = openCredential(key, environment, read.id, "refresh_token", sealedRefresh);
    const clientSecret = open(
      key,
      settings.sealedClientSecret,
      clientSecretBinding(environment, integration.name),
    ).toString("utf8");
    const outcome = await oauth.refresh(settings, clientSecret, refreshToken);
    if (outcome.kind === "unavailable") {
      if (options.lastTry) return { outcome: "gave_up", reason: outcome.reason };
      throw new ProviderUnavailableError(outcome.reason, outcome.retryAfterMs);
    }
    if (outcome.kind === "refused") {
      // invalid_grant may only mean that another refresh used this refresh token first: read again.
      const current = await store.get(environment, read.id);
      return needsReauth(scope, current, read.credentialsVersion, outcome.reason);
    }
    // The provider may have rotated the refresh token already: these tokens must be saved.
    let account: Account | undefined = read;
    for (let tries = 0; tries < 10 && account; tries++) {
      if (account.credentialsVersion !== read.credentialsVersion || account.status !== "active") {
        return { outcome: "skipped", why: "the credentials changed while the refresh ran" };
      }
      const now = clock.now();
      const { changes, unset } = tokenChanges(key, environment, account, outcome.tokens, now, {
        scopes: account.scopes ?? settings.scopes,
        refreshToken,
      });
      const after = await store.update(environment, account, { ...changes, updateTime: now }, unset, incarnation);
      if (after) return { outcome: "refreshed", credentialsVersion: after.credentialsVersion };
      account = await store.get(environment, read.id);
    }
    throw new ProviderUnavailableError("the account kept changing while its refreshed tokens were saved");
  }

  return { refresh };
}

/** Refresh jobs a sweep queues per round trip to Redis. */
const refreshChunk = 500;

export interface RefreshSweepDeps {
  listDueForRefresh(environment: string, expiringBefore: Date, idleSince: Date): Promise<Account[]>;
  refreshes: RefreshQueue;
  settings(environment: string): Promise<{ refreshMarginMs: number; refreshTokenKeepaliveMs: number }>;
  clock: Clock;
}

/**
 * Queues a refresh for every OAuth account whose token expires within the
 * margin or whose refresh token sat idle, bound to the incarnation the sweep runs for.
 */
export function createRefreshSweep(deps: RefreshSweepDeps) {
  return async (environment: string, incarnation?: string): Promise<{ queued: number }> => {
    const { refreshMarginMs, refreshTokenKeepaliveMs } = await deps.settings(environment);
    const now = deps.clock.now().getTime();
    const due = await deps.listDueForRefresh(
      environment,
      new Date(now + refreshMarginMs),
      new Date(now - refreshTokenKeepaliveMs),
    );
    // In chunks, each one round trip: a sweep of 10,000 accounts is not 10,000 sequential adds.
    for (let i = 0; i < due.length; i += refreshChunk) {
      const chunk = due.slice(i, i + refreshChunk);
      await deps.refreshes.request(
        environment,
        chunk.map((account) => ({ accountId: account.id, seenVersion: account.credentialsVersion })),
        incarnation,
      );
    }
    return { queued: due.length };
  };
}
