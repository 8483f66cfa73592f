import type { Clock } from "../clock.js";
import type { Keyring } from "../crypto/envelope.js";
import { notFound } from "./environment-service.js";
import { type Environment, type EnvironmentEvent, EnvironmentReplacedError, incarnationOf } from "./environments.js";
import type { EnvironmentSource } from "./ports.js";

export interface EnvironmentDirectoryDeps {
  source: EnvironmentSource;
  keyring: Pick<Keyring, "unwrap">;
  clock: Clock;
  /** How long "no such environment" is remembered, so unknown names cannot flood the database. */
  missTtlMs?: number;
  maxMisses?: number;
  /**
   * How long after a successful full `refresh` a name it did not list is
   * taken as no environment without asking the source: names a caller makes
   * up then cost no query at all. About twice the refresh interval; a name
   * created on another replica is heard of at once on the bus, and at the
   * latest by the next refresh.
   */
  listTrustMs?: number;
  /**
   * Told when an environment stops being what it was: deleted, or deleted and
   * made again under its name (seen by its creation time). What was cached for
   * it must go, even when the bus lost the message.
   */
  onGone?: (name: string) => void;
}

export type EnvironmentDirectory = ReturnType<typeof createEnvironmentDirectory>;

/**
 * The active environments, held in memory so that every call can check its
 * environment without a database round trip. Kept current by events from the
 * bus (`apply`) and by a periodic full `refresh` for when the bus is down.
 */
export function createEnvironmentDirectory(deps: EnvironmentDirectoryDeps) {
  const { source, keyring, clock } = deps;
  const missTtlMs = deps.missTtlMs ?? 1_000;
  const maxMisses = deps.maxMisses ?? 10_000;
  let active = new Map<string, Environment>();
  const misses = new Map<string, number>();
  const loading = new Map<string, Promise<Environment | undefined>>();
  const keys = new Map<string, { wrapped: string; key: Buffer }>();
  /** Changes of any kind: a full refresh that read its list before one is stale. */
  let generation = 0;
  /** Full refreshes begun, and events applied per name: a load that read its record before one is stale. */
  let refreshes = 0;
  const changes = new Map<string, number>();
  let listedAt = Number.NEGATIVE_INFINITY;

  function store(env: Environment | undefined, name: string): Environment | undefined {
    if (env?.state === "active") {
      const previous = active.get(name);
      // Made again under its name since this replica last looked: what was cached for the old one goes.
      if (previous && previous.createTime.getTime() !== env.createTime.getTime()) deps.onGone?.(name);
      active.set(name, env);
      misses.delete(name);
      return env;
    }
    active.delete(name);
    keys.delete(name);
    if (misses.size >= maxMisses) misses.clear();
    misses.set(name, clock.now().getTime() + missTtlMs);
    return undefined;
  }

  function load(name: string): Promise<Environment | undefined> {
    const pending = loading.get(name);
    if (pending) return pending;
    // Only a change of this name (or a full refresh) makes the record read stale: events of other names do not.
    const started = { refreshes, changes: changes.get(name) };
    const current = () => started.refreshes === refreshes && started.changes === changes.get(name);
    const promise = source
      .get(name)
      .then((env) => (current() ? store(env, name) : env?.state === "active" ? env : undefined))
      .finally(() => {
        loading.delete(name);
        // No other load of this name is pending (they are shared): the count has nothing left to tell.
        changes.delete(name);
      });
    loading.set(name, promise);
    return promise;
  }

  /** The active environment of that name, or undefined. */
  async function find(name: string): Promise<Environment | undefined> {
    const hit = active.get(name);
    if (hit) return hit;
    const now = clock.now().getTime();
    const missUntil = misses.get(name);
    if (missUntil !== undefined && missUntil > now) return undefined;
    if (deps.listTrustMs !== undefined && now - listedAt <= deps.listTrustMs) return undefined;
    return load(name);
  }

  /** The active environment; at once when it is in memory (every call asks). */
  function require(name: string): Environment | Promise<Environment> {
    const hit = active.get(name);
    if (hit) return hit;
    return find(name).then((env) => {
      if (!env) throw notFound(name);
      return env;
    });
  }

  /** Applies a change announced on the bus. */
  async function apply(event: EnvironmentEvent): Promise<void> {
    generation++;
    changes.set(event.name, (changes.get(event.name) ?? 0) + 1);
    if (event.type === "deleting" || event.type === "deleted") {
      if (!loading.has(event.name)) changes.delete(event.name);
      store(undefined, event.name);
      deps.onGone?.(event.name);
      return;
    }
    misses.delete(event.name);
    await load(event.name);
  }

  async function refresh(): Promise<void> {
    const started = ++generation;
    refreshes++;
    const startedAt = clock.now().getTime();
    const envs = await source.listActive();
    if (started !== generation) return;
    listedAt = startedAt;
    const previous = active;
    active = new Map(envs.map((env) => [env.name, env]));
    for (const [name, env] of previous) {
      const now = active.get(name);
      if (!now || now.createTime.getTime() !== env.createTime.getTime()) deps.onGone?.(name);
    }
    for (const name of keys.keys()) if (!active.has(name)) keys.delete(name);
  }

  /**
   * The active environment in `incarnation`. This process may not have heard
   * of a delete or a re-creation yet (or heard of it before the job's
   * producer did): a mismatch is settled by the record itself.
   */
  async function requireIncarnation(name: string, incarnation: string): Promise<Environment> {
    const known = active.get(name);
    if (known && incarnationOf(known) === incarnation) return known;
    misses.delete(name);
    const env = await load(name);
    if (!env || incarnationOf(env) !== incarnation) throw new EnvironmentReplacedError(name, incarnation);
    return env;
  }

  /**
   * The environment's unwrapped data key, cached while its wrapped form is
   * unchanged. Given an `incarnation`, that incarnation's key or an
   * EnvironmentReplacedError: never its successor's.
   */
  async function dataKey(name: string, incarnation?: string): Promise<Buffer> {
    const env = incarnation === undefined ? await require(name) : await requireIncarnation(name, incarnation);
    const cached = keys.get(name);
    if (cached && cached.wrapped === env.dataKey.wrapped) return cached.key;
    const key = keyring.unwrap(name, env.dataKey);
    keys.set(name, { wrapped: env.dataKey.wrapped, key });
    return key;
  }

  function names(): string[] {
    return [...active.keys()];
  }

  /** The active environments as memory holds them, with no I/O. */
  function list(): Environment[] {
    return [...active.values()];
  }

  /** Whether the environment is active as far as memory knows, with no I/O. */
  function has(name: string): boolean {
    return active.has(name);
  }

  return { find, require, apply, refresh, dataKey, names, list, has };
}
