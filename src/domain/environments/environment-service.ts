import { sleep } from "../../async.js";
import type { Clock } from "../clock.js";
import type { Keyring } from "../crypto/envelope.js";
import {
  AlreadyExistsError,
  ConcurrentModificationError,
  FailedPreconditionError,
  NotFoundError,
  RoomkeyError,
} from "../errors.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import { type Environment, type EnvironmentChanges, type EnvironmentSettings, incarnationOf } from "./environments.js";
import type {
  ActiveAccountCounter,
  EnvironmentEventPublisher,
  EnvironmentResources,
  EnvironmentStore,
} from "./ports.js";

export interface EnvironmentServiceDeps {
  store: EnvironmentStore;
  resources: EnvironmentResources;
  accounts: ActiveAccountCounter;
  keyring: Pick<Keyring, "createDataKey" | "current">;
  events: EnvironmentEventPublisher;
  clock: Clock;
  /** A `creating` record older than this was abandoned by a crashed call and may be taken over. */
  staleCreateMs?: number;
}

export type EnvironmentService = ReturnType<typeof createEnvironmentService>;

export function notFound(name: string): NotFoundError {
  return new NotFoundError("not_found", "ENVIRONMENT_NOT_FOUND", `environment "${name}" does not exist`, {
    environment: name,
  });
}

function busy(name: string, doing: string): RoomkeyError {
  return new RoomkeyError("unavailable", "ENVIRONMENT_BUSY", `environment "${name}" is being ${doing}; retry later`, {
    environment: name,
  });
}

const maxAttempts = 5;
/** The first wait after a lost compare-and-set, doubled each time (25, 50, 100, 200 ms). */
const claimBackoffMs = 25;

/**
 * Environments: create (record, database, key, queues), read, update with
 * optimistic concurrency, list, and delete with its database, queues and key.
 */
export function createEnvironmentService(deps: EnvironmentServiceDeps) {
  const { store, resources, accounts, keyring, events, clock } = deps;
  const staleCreateMs = deps.staleCreateMs ?? 60_000;

  function newRecord(name: string, changes: EnvironmentChanges, builtIn: boolean): Environment {
    const now = clock.now();
    return {
      name,
      displayName: changes.displayName ?? "",
      description: changes.description ?? "",
      settings: changes.settings ?? {},
      builtIn,
      state: "creating",
      dataKey: keyring.createDataKey(name).wrapped,
      createTime: now,
      updateTime: now,
      version: 1,
    };
  }

  /**
   * Provisions the database and flips the record to `active`. Safe to run
   * concurrently. The caller that inserted the record first drops any database
   * of that name: with no record it belonged to no one (a replica that had not
   * yet heard of a deletion may have written to it), and must not leak into
   * the new environment.
   */
  async function finishCreate(record: Environment, inserted: boolean): Promise<Environment> {
    if (inserted) await resources.dropDatabase(record.name);
    await resources.provision(record.name, incarnationOf(record));
    let current: Environment | undefined = record;
    for (let attempt = 0; attempt < maxAttempts && current; attempt++) {
      if (current.state === "active") return current;
      if (current.state === "deleting") throw busy(record.name, "deleted");
      const active: Environment = {
        ...current,
        state: "active",
        updateTime: clock.now(),
        version: current.version + 1,
      };
      // A creation left under another master key (one since rotated away, perhaps removed): nothing is
      // sealed under its data key before it is active, so it gets a new one under the current key.
      if (current.dataKey.masterKeyId !== keyring.current.fingerprint) {
        active.dataKey = keyring.createDataKey(record.name).wrapped;
      }
      if (await store.replace(active, current.version)) {
        await events.publish({ type: "created", name: record.name });
        return active;
      }
      // Another replica's write of this record may be under way (its claim is in): give it time.
      await sleep(claimBackoffMs * 2 ** attempt);
      current = await store.get(record.name);
    }
    if (!current) throw notFound(record.name);
    throw new ConcurrentModificationError(`environment "${record.name}"`);
  }

  async function create(name: string, changes: EnvironmentChanges): Promise<Environment> {
    const record = newRecord(name, changes, false);
    if (await store.insert(record)) return finishCreate(record, true);
    const existing = await store.get(name);
    if (!existing) throw new ConcurrentModificationError(`environment "${name}"`);
    if (existing.state === "deleting") throw busy(name, "deleted");
    const abandoned = clock.now().getTime() - existing.updateTime.getTime() > staleCreateMs;
    if (existing.state === "creating" && abandoned) return finishCreate(existing, false);
    throw new AlreadyExistsError(
      "already_exists",
      "ENVIRONMENT_EXISTS",
      existing.state === "creating" ? `environment "${name}" is being created` : `environment "${name}" already exists`,
      { environment: name },
    );
  }

  /**
   * Makes sure a built-in environment exists. Idempotent, and safe when several
   * replicas start at once: they may all provision, one record wins. One being
   * deleted is left alone (undefined).
   */
  async function ensure(name: string): Promise<Environment | undefined> {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const existing = await store.get(name);
      if (existing?.state === "active") return existing;
      if (existing?.state === "deleting") return undefined;
      if (existing) return finishCreate(existing, false);
      const record = newRecord(name, {}, true);
      if (await store.insert(record)) return finishCreate(record, true);
    }
    throw new ConcurrentModificationError(`environment "${name}"`);
  }

  /**
   * Creates the default environments on a deployment's first start only: one
   * an operator deleted later stays deleted across restarts.
   */
  async function bootstrap(names: readonly string[]): Promise<void> {
    if (await store.isBootstrapped()) return;
    for (const name of names) await ensure(name);
    await store.markBootstrapped(clock.now());
  }

  async function getActive(name: string): Promise<Environment> {
    const env = await store.get(name);
    if (!env || env.state === "creating") throw notFound(name);
    if (env.state === "deleting") throw busy(name, "deleted");
    return env;
  }

  async function update(name: string, changes: EnvironmentChanges): Promise<Environment> {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const current = await getActive(name);
      const settings: EnvironmentSettings = { ...current.settings, ...changes.settings };
      const next: Environment = {
        ...current,
        displayName: changes.displayName ?? current.displayName,
        description: changes.description ?? current.description,
        settings,
        updateTime: clock.now(),
        version: current.version + 1,
      };
      if (await store.replace(next, current.version)) {
        await events.publish({ type: "updated", name });
        return next;
      }
    }
    throw new ConcurrentModificationError(`environment "${name}"`);
  }

  async function list(page: PageRequest): Promise<Page<Environment>> {
    const items = await store.list(page);
    return toPage(items, page.size, (env) => env.name);
  }

  async function refuseIfActiveAccounts(name: string): Promise<void> {
    const active = await accounts.countActive(name);
    if (active > 0) {
      throw new FailedPreconditionError(
        "failed_precondition",
        "ENVIRONMENT_HAS_ACTIVE_ACCOUNTS",
        `environment "${name}" has ${active} active account(s); disconnect them or delete with force`,
        { environment: name, active_accounts: String(active) },
      );
    }
  }

  async function setState(env: Environment, state: Environment["state"]): Promise<Environment | undefined> {
    const next: Environment = { ...env, state, updateTime: clock.now(), version: env.version + 1 };
    return (await store.replace(next, env.version)) ? next : undefined;
  }

  /**
   * Deletes an environment. The record turns `deleting` first, so replicas stop
   * serving it, then queues, database and record (with the data key) go.
   * Re-running a delete that was interrupted finishes it.
   */
  async function remove(name: string, force: boolean): Promise<void> {
    let env = await store.get(name);
    if (!env) throw notFound(name);
    resources.assertQueuesReachable();
    if (env.state !== "deleting") {
      const before = env.state;
      if (!force) await refuseIfActiveAccounts(name);
      const marked = await setState(env, "deleting");
      if (!marked) throw new ConcurrentModificationError(`environment "${name}"`);
      env = marked;
      await events.publish({ type: "deleting", name });
      if (!force) {
        // An account may have become active between the count and the mark.
        try {
          await refuseIfActiveAccounts(name);
        } catch (error) {
          if (await setState(env, before)) await events.publish({ type: "updated", name });
          throw error;
        }
      }
    }
    await resources.removeQueues(name);
    await resources.dropDatabase(name);
    await store.remove(name);
    await events.publish({ type: "deleted", name });
  }

  /** Finishes deletes left half done (by a crash, or Redis going away mid-way) once they are older than `olderThanMs`. */
  async function finishAbandonedDeletes(records: readonly Environment[], olderThanMs: number): Promise<string[]> {
    const finished: string[] = [];
    for (const env of records) {
      if (env.state !== "deleting" || clock.now().getTime() - env.updateTime.getTime() < olderThanMs) continue;
      await remove(env.name, true);
      finished.push(env.name);
    }
    return finished;
  }

  return { create, ensure, bootstrap, get: getActive, update, list, remove, finishAbandonedDeletes };
}
