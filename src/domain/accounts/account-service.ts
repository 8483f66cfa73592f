import { ConcurrentModificationError, FailedPreconditionError, invalidField } from "../errors.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import { type AccountServiceDeps, accountNotFound } from "./account-common.js";
import { createAccountConnections } from "./account-connections.js";
import { createAccountCredentials } from "./account-credentials.js";
import { type Account, type AccountStatus, type AccountView, type EndUser, toAccountView } from "./accounts.js";
import type { AccountFilter } from "./ports.js";

export type AccountService = ReturnType<typeof createAccountService>;

/** What UpdateAccount changes: the labels, and the end user's display fields (each only when given). */
export interface AccountUpdate {
  labels?: Record<string, string>;
  endUser?: Partial<EndUser>;
}

/**
 * The accounts of each environment: connecting them (account-connections.ts),
 * handing out and refreshing their credentials (account-credentials.ts), and
 * reading, labelling and disconnecting them (here).
 */
export function createAccountService(deps: AccountServiceDeps) {
  const { store, events, clock } = deps;

  async function read(environment: string, id: string): Promise<Account> {
    const account = await store.get(environment, id);
    if (!account) throw accountNotFound(environment, id);
    return account;
  }

  async function announce(environment: string, account: Account, previousStatus: AccountStatus | undefined) {
    await events.publish(environment, {
      account: toAccountView(account),
      previousStatus: previousStatus ?? account.status,
      eventTime: account.updateTime,
    });
  }

  async function get(environment: string, id: string): Promise<AccountView> {
    return toAccountView(await read(environment, id));
  }

  async function list(environment: string, filter: AccountFilter, page: PageRequest): Promise<Page<AccountView>> {
    const items = await store.list(environment, filter, page);
    return toPage(items.map(toAccountView), page.size, (a) => a.id);
  }

  /** Applies a change to the account as it is now, re-reading when another writer got there first. */
  async function change(
    environment: string,
    id: string,
    make: (account: Account) => { changes: Partial<Account>; unset?: (keyof Account)[] } | undefined,
  ): Promise<{ before: Account; after: Account }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await read(environment, id);
      const planned = make(before);
      if (!planned) return { before, after: before };
      const after = await store.update(environment, before, planned.changes, planned.unset);
      if (after) return { before, after };
    }
    throw new ConcurrentModificationError(`account "${id}"`);
  }

  /**
   * Changes an account's labels and its end user's display fields (never the
   * end user's id: an `endUser.id` given must be the account's own).
   */
  async function update(environment: string, id: string, changes: AccountUpdate): Promise<AccountView> {
    const { after } = await change(environment, id, (account) => {
      const next: Partial<Account> = { updateTime: clock.now() };
      if (changes.labels) next.labels = { ...changes.labels };
      const display = changes.endUser;
      if (display) {
        const current = account.endUser;
        if (!current) {
          throw new FailedPreconditionError(
            "failed_precondition",
            "INVALID_REQUEST",
            `account "${id}" has no end user; its end user is set when it is connected`,
          );
        }
        if (display.id !== undefined && display.id !== "" && display.id !== current.id) {
          throw invalidField("account.end_user.id", `cannot change: the account belongs to end user "${current.id}"`);
        }
        next.endUser = {
          id: current.id,
          displayName: display.displayName ?? current.displayName,
          email: display.email ?? current.email,
          tags: display.tags ? [...display.tags] : current.tags,
        };
      }
      return { changes: next };
    });
    return toAccountView(after);
  }

  /**
   * Wipes the credentials and sets DISCONNECTED; deleting again changes
   * nothing. When the integration has a revocation endpoint, the OAuth
   * tokens (sealed as they were) wait on the account for the revocation job,
   * which wipes them once the provider answered or the retries ran out.
   */
  async function disconnect(environment: string, id: string): Promise<AccountView> {
    const integration = deps.revocations
      ? await deps.integrations.get(environment, (await read(environment, id)).integration)
      : undefined;
    const revocable = integration?.oauth2?.revocationUrl !== undefined;
    const { before, after } = await change(environment, id, (account) => {
      if (account.status === "disconnected") return undefined;
      const now = clock.now();
      const { access_token, refresh_token } = account.held?.credentials ?? account.credentials;
      const tokens = {
        ...(access_token === undefined ? {} : { access_token }),
        ...(refresh_token === undefined ? {} : { refresh_token }),
      };
      const revoke = revocable && Object.keys(tokens).length > 0;
      return {
        changes: {
          status: "disconnected",
          statusReason: "",
          credentials: {},
          credentialsVersion: account.credentialsVersion + 1,
          updateTime: now,
          ...(revoke
            ? { upstreamRevocation: { status: "pending", attempts: 0, lastError: "", updateTime: now, tokens } }
            : {}),
        },
        unset: ["credentialsExpireTime", "held"],
      };
    });
    if (before !== after) {
      if (after.upstreamRevocation?.status === "pending" && deps.revocations) {
        // Redis refusing must not fail the delete: the rotation sweep queues pending revocations again.
        await deps.revocations.enqueue(environment, id).catch((error: unknown) =>
          deps.warn("could not queue an upstream revocation; the rotation sweep will", {
            environment,
            account: id,
            error: error instanceof Error ? error.message : String(error),
          }),
        );
      }
      await announce(environment, after, before.status);
    }
    return toAccountView(after);
  }

  const connections = createAccountConnections(deps, { read, announce, change });
  const handOut = createAccountCredentials(deps, read);

  return {
    connect: connections.connect,
    get,
    list,
    update,
    disconnect,
    credentials: handOut.credentials,
    startOAuth: connections.startOAuth,
    completeOAuth: connections.completeOAuth,
    stateFacts: connections.stateFacts,
    refresh: handOut.refresh,
  };
}
