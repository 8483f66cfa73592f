import type { Keyring, MasterKeyInfo } from "../crypto/envelope.js";
import { type Environment, EnvironmentReplacedError, incarnationOf } from "./environments.js";
import type { DataKeyStore, EnvironmentEventPublisher, RewrapQueue } from "./ports.js";

/** One master key's share of the data keys, as GetMasterKeyStatus reports it. */
export interface MasterKeyUsage {
  /** The configured id, or the fingerprint for a key this replica does not have. */
  id: string;
  fingerprint: string;
  current: boolean;
  configured: boolean;
  dataKeys: number;
  /** Ordered by name, at most `maxListedEnvironments`. */
  environments: string[];
}

export interface MasterKeyStatus {
  /** The current key first, then the other configured ones, then keys found but not configured. */
  keys: MasterKeyUsage[];
  dataKeysOnOldKeys: number;
}

/** What one rewrap job did; `rewrapped` names both keys, for the audit log. */
export type RewrapOutcome =
  | { outcome: "rewrapped"; environment: string; from: MasterKeyInfo; to: MasterKeyInfo }
  | { outcome: "unchanged"; environment: string; masterKey: MasterKeyInfo }
  /** Wrapped by a key this replica lacks: left as it is (never rewrapped nor destroyed from here). */
  | { outcome: "skipped"; environment: string; fingerprint: string; why: string };

export const maxListedEnvironments = 100;

/**
 * Data keys by master key: every configured key by its id (0 included), a key found but not configured by
 * its fingerprint. For the `roomkey_data_keys` gauge, from the environments a directory holds in memory.
 */
export function dataKeysByMasterKey(
  keyring: Pick<Keyring, "keys">,
  environments: readonly Pick<Environment, "dataKey">[],
): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(keyring.keys.map((key) => [key.id, 0]));
  const idOf = new Map(keyring.keys.map((key) => [key.fingerprint, key.id]));
  for (const env of environments) {
    const label = idOf.get(env.dataKey.masterKeyId) ?? env.dataKey.masterKeyId;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}

/** Write attempts of one rewrap before the job fails (and BullMQ tries it again): only UpdateEnvironment races it. */
const rewrapWriteAttempts = 5;

export interface MasterKeyRotationDeps {
  store: DataKeyStore;
  keyring: Pick<Keyring, "rewrap" | "current" | "keys" | "has">;
  queue: RewrapQueue;
  /** Tells every replica's environment directory that the record changed (its wrapped data key). */
  events: EnvironmentEventPublisher;
}

export type MasterKeyRotation = ReturnType<typeof createMasterKeyRotation>;

/** Records whose data key is in use: active ones, and those being created (they become active with it). */
function holdsDataKey(env: Environment): boolean {
  return env.state === "active" || env.state === "creating";
}

/**
 * Moves every environment's data key to the current master key: the data key
 * itself stays (what is sealed under it is not touched), only its wrapping
 * changes, in one compare-and-set write of the environment's record.
 */
export function createMasterKeyRotation({ store, keyring, queue, events }: MasterKeyRotationDeps) {
  const current = keyring.current;

  function infoOf(fingerprint: string): MasterKeyInfo | undefined {
    return keyring.keys.find((key) => key.fingerprint === fingerprint);
  }

  /** Whether a record's data key is to be moved by this replica: on another key, one it holds. */
  function needsRewrap(env: Pick<Environment, "dataKey">): boolean {
    return env.dataKey.masterKeyId !== current.fingerprint && keyring.has(env.dataKey.masterKeyId);
  }

  async function status(): Promise<MasterKeyStatus> {
    const byFingerprint = new Map<string, string[]>();
    for (const env of await store.listAll()) {
      if (!holdsDataKey(env)) continue;
      const names = byFingerprint.get(env.dataKey.masterKeyId) ?? [];
      names.push(env.name);
      byFingerprint.set(env.dataKey.masterKeyId, names);
    }
    const usage = (info: MasterKeyInfo | undefined, fingerprint: string): MasterKeyUsage => {
      const names = (byFingerprint.get(fingerprint) ?? []).sort();
      return {
        id: info?.id ?? fingerprint,
        fingerprint,
        current: fingerprint === current.fingerprint,
        configured: info !== undefined,
        dataKeys: names.length,
        environments: names.slice(0, maxListedEnvironments),
      };
    };
    const keys = keyring.keys.map((info) => usage(info, info.fingerprint));
    const unknown = [...byFingerprint.keys()].filter((fingerprint) => !keyring.has(fingerprint)).sort();
    keys.push(...unknown.map((fingerprint) => usage(undefined, fingerprint)));
    const dataKeysOnOldKeys = keys.filter((key) => !key.current).reduce((sum, key) => sum + key.dataKeys, 0);
    return { keys, dataKeysOnOldKeys };
  }

  /** Queues a rewrap for every active environment this replica can move; returns their names, ordered. */
  async function requestRewraps(): Promise<string[]> {
    const due = (await store.listAll()).filter((env) => env.state === "active" && needsRewrap(env));
    for (const env of due) await queue.request(env.name, incarnationOf(env), current.fingerprint);
    return due.map((env) => env.name).sort();
  }

  /**
   * The rewrap job: the environment's data key, of `incarnation`, wrapped
   * under the current master key when that is the key `to` the job asks for.
   * Safe to run again and alongside other writers: the write lands only on
   * the record of that incarnation still holding the wrapping it replaces.
   */
  async function rewrap(environment: string, incarnation: string, to: string): Promise<RewrapOutcome> {
    for (let attempt = 1; ; attempt++) {
      const env = await store.get(environment);
      if (env?.state !== "active" || incarnationOf(env) !== incarnation) {
        throw new EnvironmentReplacedError(environment, incarnation);
      }
      const from = infoOf(env.dataKey.masterKeyId);
      if (env.dataKey.masterKeyId === current.fingerprint) {
        return { outcome: "unchanged", environment, masterKey: current };
      }
      if (to !== current.fingerprint) {
        // Queued by a replica of another configuration (a rollout under way): its own workers move it.
        return {
          outcome: "skipped",
          environment,
          fingerprint: env.dataKey.masterKeyId,
          why: `the job asks for master key ${to}, but this replica's current key is ${current.fingerprint}`,
        };
      }
      if (!from) {
        return {
          outcome: "skipped",
          environment,
          fingerprint: env.dataKey.masterKeyId,
          why: "its master key is not configured on this replica",
        };
      }
      const rewrapped = keyring.rewrap(environment, env.dataKey);
      if (await store.replaceDataKey(environment, incarnation, env.version, env.dataKey, rewrapped)) {
        await events.publish({ type: "updated", name: environment });
        return { outcome: "rewrapped", environment, from, to: current };
      }
      if (attempt >= rewrapWriteAttempts) {
        throw new Error(`the record of ${environment} kept changing; the rewrap runs again`);
      }
    }
  }

  /**
   * Data keys this replica cannot open, by the fingerprint of their master key
   * (up to `limit` environments each): an operator removed a key too early.
   */
  function unopenable(envs: readonly Environment[], limit = 5): { fingerprint: string; environments: string[] }[] {
    const found = new Map<string, string[]>();
    for (const env of envs) {
      if (!holdsDataKey(env) || keyring.has(env.dataKey.masterKeyId)) continue;
      found.set(env.dataKey.masterKeyId, [...(found.get(env.dataKey.masterKeyId) ?? []), env.name]);
    }
    return [...found].map(([fingerprint, names]) => ({ fingerprint, environments: names.sort().slice(0, limit) }));
  }

  return { status, requestRewraps, rewrap, needsRewrap, unopenable };
}
