import { settlesWithin } from "../../async.js";
import { FailedPreconditionError, invalidField, RoomkeyError } from "../errors.js";
import { type AccountServiceDeps, openCredential, refreshPatienceMs, stillUsableMs } from "./account-common.js";
import { type Account, type AccountView, type Credential, type CredentialField, toAccountView } from "./accounts.js";

/**
 * Handing out credentials (GetAccountCredentials) and refreshing OAuth 2.0
 * access tokens on demand (RefreshAccountCredentials). Refreshes themselves
 * run on the rotation worker; this asks for one and waits.
 */
export function createAccountCredentials(
  deps: AccountServiceDeps,
  read: (environment: string, id: string) => Promise<Account>,
) {
  const { keys, clock } = deps;

  const refreshing = new Map<string, Promise<Account>>();

  /**
   * Has the account's credentials refreshed by the rotation worker and waits
   * for the new ones. Concurrent callers on this replica share one wait, and
   * the job id per account makes callers on every replica share one refresh.
   */
  function refreshNow(environment: string, account: Account): Promise<Account> {
    const key = `${environment}/${account.id}`;
    let pending = refreshing.get(key);
    if (!pending) {
      pending = (async () => {
        await deps.refreshes.request(environment, [{ accountId: account.id, seenVersion: account.credentialsVersion }]);
        const deadline = Date.now() + deps.refreshWaitMs;
        while (Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, deps.pollMs ?? 50));
          const now = await read(environment, account.id);
          if (now.credentialsVersion !== account.credentialsVersion || now.status !== account.status) return now;
        }
        throw new RoomkeyError(
          "unavailable",
          "PROVIDER_UNAVAILABLE",
          `the credentials of account "${account.id}" could not be refreshed within ${deps.refreshWaitMs} ms; retry`,
          { account: account.id },
        );
      })().finally(() => refreshing.delete(key));
      refreshing.set(key, pending);
    }
    return pending;
  }

  /**
   * The account after a refresh. While its access token still works (for more
   * than `stillUsableMs`), a refresh that cannot finish soon (the provider is
   * slow or down) does not hold the caller: the current token is handed out
   * and the rotation worker keeps trying. A token past that is only ever
   * replaced, never handed out.
   */
  async function refreshedOrCurrent(environment: string, account: Account, leftMs: number): Promise<Account> {
    const pending = refreshNow(environment, account);
    const usableMs = leftMs - stillUsableMs;
    if (usableMs <= 0) return pending;
    pending.catch(() => undefined);
    const waitMs = Math.min(deps.refreshWaitMs, usableMs, refreshPatienceMs);
    if (await settlesWithin(pending, waitMs)) {
      try {
        return await pending;
      } catch (error) {
        deps.warn("refresh failed; handing out the access token that still works", { account: account.id, error });
      }
    }
    return read(environment, account.id);
  }

  function notActive(account: Account): FailedPreconditionError {
    const why = account.statusReason ? ` (${account.statusReason})` : "";
    return new FailedPreconditionError(
      "failed_precondition",
      "ACCOUNT_NOT_ACTIVE",
      `account "${account.id}" is ${account.status}${why}; only an active account has usable credentials`,
      { account: account.id, status: account.status },
    );
  }

  /** RefreshAccountCredentials: an OAuth account's access token is refreshed now. */
  async function refresh(environment: string, id: string): Promise<AccountView> {
    const account = await read(environment, id);
    if (account.authType !== "oauth2") {
      throw invalidField("id", `account "${id}" does not use OAuth 2.0; only OAuth credentials are refreshed`);
    }
    if (account.status !== "active") throw notActive(account);
    const after = await refreshNow(environment, account);
    if (after.status !== "active") throw notActive(after);
    return toAccountView(after);
  }

  /**
   * The decrypted credential of an ACTIVE account. An OAuth access token that
   * expires within the environment's refresh margin is refreshed first.
   */
  async function credentials(environment: string, id: string): Promise<Credential> {
    let account = await read(environment, id);
    if (account.status !== "active") throw notActive(account);
    if (account.authType === "oauth2" && account.credentialsExpireTime !== undefined) {
      const margin = await deps.refreshMarginMs(environment);
      const leftMs = account.credentialsExpireTime.getTime() - clock.now().getTime();
      if (leftMs <= margin) {
        account = await refreshedOrCurrent(environment, account, leftMs);
        if (account.status !== "active") throw notActive(account);
      }
    }
    const key = await keys.dataKey(environment);
    const current = account;
    const opened = (field: CredentialField): string => {
      const sealed = current.credentials[field];
      if (sealed === undefined) throw notActive(current);
      return openCredential(key, environment, id, field, sealed);
    };
    switch (account.authType) {
      case "api_key":
        return { kind: "api_key", apiKey: opened("api_key") };
      case "basic":
        return { kind: "basic", username: opened("username"), password: opened("password") };
      case "oauth2":
        return {
          kind: "oauth2",
          accessToken: opened("access_token"),
          tokenType: account.tokenType ?? "Bearer",
          ...(account.credentialsExpireTime ? { expireTime: account.credentialsExpireTime } : {}),
          scopes: account.scopes ?? [],
        };
    }
  }

  return { refresh, credentials };
}
