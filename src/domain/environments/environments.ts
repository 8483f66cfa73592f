import type { WrappedDataKey } from "../crypto/envelope.js";
import { isEnvironmentName } from "./environment-name.js";

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;

/** Settings stored with an environment; an absent value means the default. */
export interface EnvironmentSettings {
  /** Lifetime of tokens created without an expiry; absent: they do not expire. */
  defaultTokenLifetimeMs?: number;
  oauthRefreshMarginMs?: number;
  refreshTokenKeepaliveMs?: number;
  tokenRetentionMs?: number;
  /** How long audit entries are kept before the retention sweep deletes them. */
  auditRetentionMs?: number;
}

export const settingDefaults = {
  oauthRefreshMarginMs: 10 * minute,
  refreshTokenKeepaliveMs: 7 * day,
  tokenRetentionMs: 30 * day,
  auditRetentionMs: 90 * day,
} as const;

/** The settings an environment actually runs with: stored values over defaults. */
export function effectiveSettings(settings: EnvironmentSettings): EnvironmentSettings & typeof settingDefaults {
  return { ...settingDefaults, ...withoutUndefined(settings) };
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * `creating`: the record exists, its database may not be ready yet.
 * `active`: serving. `deleting`: being torn down; no longer served.
 */
export type EnvironmentState = "creating" | "active" | "deleting";

export interface Environment {
  name: string;
  displayName: string;
  description: string;
  settings: EnvironmentSettings;
  builtIn: boolean;
  state: EnvironmentState;
  /** The environment's data key, wrapped by the master key. Gone with the environment. */
  dataKey: WrappedDataKey;
  createTime: Date;
  updateTime: Date;
  /** Incremented by every write; writes compare it (optimistic concurrency). */
  version: number;
}

/**
 * Which life of its name an environment is: one deleted and created again
 * under the same name is another incarnation, with a new database and a new
 * data key. Its creation time tells them apart (as it does for the record's
 * own compare-and-set). Work queued or running for one incarnation never
 * writes into another.
 */
export function incarnationOf(environment: Pick<Environment, "createTime">): string {
  return String(environment.createTime.getTime());
}

/** Where bound work checks its incarnation: the environment's record as stored now, never a cache. */
export interface IncarnationSource {
  /** The incarnation of the environment's record if it is active; undefined if deleted, being deleted or not created. */
  currentIncarnation(environment: string): Promise<string | undefined>;
}

/**
 * The incarnation a job or write was bound to is no longer the environment's
 * current one (deleted, or deleted and created again): it must write nothing.
 * Only jobs are bound, so this never reaches a caller: workers discard the
 * job with a log line, and nothing retries it.
 */
export class EnvironmentReplacedError extends Error {
  override readonly name = "EnvironmentReplacedError";
  readonly code = "ENVIRONMENT_REPLACED";
  constructor(
    readonly environment: string,
    readonly incarnation: string,
  ) {
    super(`environment "${environment}" is no longer incarnation ${incarnation}`);
  }
}

/** What CreateEnvironment and UpdateEnvironment may set. */
export interface EnvironmentChanges {
  displayName?: string;
  description?: string;
  /** Replaces the named settings; a key present with `undefined` resets it to its default. */
  settings?: EnvironmentSettings;
}

/** Published on the event bus whenever the set of environments changes. */
export interface EnvironmentEvent {
  type: "created" | "updated" | "deleting" | "deleted";
  name: string;
}

const eventTypes: ReadonlySet<string> = new Set(["created", "updated", "deleting", "deleted"]);

/** Whether a payload from the bus is an EnvironmentEvent with a valid environment name. */
export function isEnvironmentEvent(value: unknown): value is EnvironmentEvent {
  const event = value as Partial<EnvironmentEvent> | null;
  return typeof event?.name === "string" && isEnvironmentName(event.name) && eventTypes.has(String(event.type));
}
