import { ConcurrentModificationError } from "../errors.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import { type AccountServiceDeps, accountNotFound } from "./account-common.js";
import { createAccountConnections } from "./account-connections.js";
import { createAccountCredentials } from "./account-credentials.js";
import { type Account, type AccountStatus, type AccountView, toAccountView } from "./accounts.js";
import type { AccountFilter } from "./ports.js";

export type AccountService = ReturnType<typeof createAccountService>;

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

  async function updateLabels(environment: string, id: string, labels: Record<string, string>): Promise<AccountView> {
    const { after } = await change(environment, id, () => ({
      changes: { labels: { ...labels }, updateTime: clock.now() },
    }));
    return toAccountView(after);
  }

  /** Wipes the credentials and sets DISCONNECTED; deleting again changes nothing. */
  async function disconnect(environment: string, id: string): Promise<AccountView> {
    const { before, after } = await change(environment, id, (account) =>
      account.status === "disconnected"
        ? undefined
        : {
            changes: {
              status: "disconnected",
              statusReason: "",
              credentials: {},
              credentialsVersion: account.credentialsVersion + 1,
              updateTime: clock.now(),
            },
            unset: ["credentialsExpireTime"],
          },
    );
    if (before !== after) await announce(environment, after, before.status);
    return toAccountView(after);
  }

  const connections = createAccountConnections(deps, { read, announce, change });
  const handOut = createAccountCredentials(deps, read);

  return {
    connect: connections.connect,
    get,
    list,
    updateLabels,
    disconnect,
    credentials: handOut.credentials,
    startOAuth: connections.startOAuth,
    completeOAuth: connections.completeOAuth,
    refresh: handOut.refresh,
  };
}
