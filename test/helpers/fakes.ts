import { randomBytes } from "node:crypto";
import { type Logger, pino } from "pino";
import type { Account, AccountEvent } from "../../src/domain/accounts/accounts.js";
import type { OAuthClient, TokenOutcome } from "../../src/domain/accounts/oauth.js";
import type { AccountEvents, AccountStore } from "../../src/domain/accounts/ports.js";
import type { Clock } from "../../src/domain/clock.js";
import { type Environment, EnvironmentReplacedError } from "../../src/domain/environments/environments.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import type { OAuth2Settings } from "../../src/domain/integrations/integrations.js";
import { createPageTokens, type PageTokens } from "../../src/domain/paging.js";

/** A clock that only moves when the test says so. */
export function fakeClock(start = Date.UTC(2030, 0, 1)): Clock & { advance(ms: number): void; set(ms: number): void } {
  let now = start;
  return {
    now: () => new Date(now),
    advance(ms) {
      now += ms;
    },
    set(ms) {
      now = ms;
    },
  };
}

/** A promise the test settles by hand, to hold a dependency mid-flight. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every already-queued promise callback run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** The error a function throws; fails the test when it returns. */
export function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw, but it returned");
}

/** Narrows to RoomkeyError, failing with the actual value otherwise. */
export function asRoomkeyError(error: unknown): RoomkeyError {
  if (error instanceof RoomkeyError) return error;
  throw new Error(`expected a RoomkeyError, got ${String(error)}`);
}

/** A pino logger that keeps its lines in memory instead of writing anywhere. */
export function memoryLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => chunks.push(line) });
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter((line) => line !== "")
      .map((line): Record<string, unknown> => JSON.parse(line));
  return { logger, lines };
}

/**
 * An in-memory account store with the repository's version check: `update`
 * writes only over the version it was given, and returns undefined otherwise.
 * With `currentIncarnation` set, it also refuses a write bound to another
 * incarnation, as the repository does (EnvironmentReplacedError).
 */
export class FakeAccountStore implements Pick<AccountStore, "get" | "update"> {
  readonly records = new Map<string, Account>();
  /** Writes that won, and writes refused because the version had moved. */
  writes = 0;
  conflicts = 0;
  /** The environment's incarnation now; undefined: the store does not check. */
  currentIncarnation: string | undefined;
  /** The incarnation each update was bound to, in order. */
  readonly boundTo: (string | undefined)[] = [];
  /** Runs before every update is applied, to let a test act as a concurrent writer. */
  beforeUpdate: ((environment: string, account: Account) => void | Promise<void>) | undefined;

  private static key(environment: string, id: string): string {
    return `${environment}/${id}`;
  }

  async get(environment: string, id: string): Promise<Account | undefined> {
    const found = this.records.get(FakeAccountStore.key(environment, id));
    return found && structuredClone(found);
  }

  async update(
    environment: string,
    account: Account,
    changes: Partial<Account>,
    unset: readonly (keyof Account)[] = [],
    incarnation?: string,
  ): Promise<Account | undefined> {
    await this.beforeUpdate?.(environment, account);
    this.boundTo.push(incarnation);
    if (incarnation !== undefined && this.currentIncarnation !== undefined && incarnation !== this.currentIncarnation) {
      throw new EnvironmentReplacedError(environment, incarnation);
    }
    const key = FakeAccountStore.key(environment, account.id);
    const stored = this.records.get(key);
    if (!stored || stored.version !== account.version) {
      this.conflicts++;
      return undefined;
    }
    const { id: _id, version: _version, ...set } = changes;
    const after: Account = { ...stored, ...structuredClone(set), version: stored.version + 1 };
    for (const field of unset) delete after[field];
    this.writes++;
    this.records.set(key, after);
    return structuredClone(after);
  }

  put(environment: string, account: Account): void {
    this.records.set(FakeAccountStore.key(environment, account.id), structuredClone(account));
  }

  /** Changes the stored account as another writer would, moving its version. */
  change(environment: string, id: string, changes: Partial<Account>): Account {
    const after: Account = { ...this.stored(environment, id), ...structuredClone(changes) };
    after.version++;
    this.records.set(FakeAccountStore.key(environment, id), after);
    return structuredClone(after);
  }

  stored(environment: string, id: string): Account {
    const found = this.records.get(FakeAccountStore.key(environment, id));
    if (!found) throw new Error(`no account ${environment}/${id}`);
    return structuredClone(found);
  }
}

/** AccountEvents that keep what was published. */
export function recordingEvents(): {
  events: AccountEvents;
  published: { environment: string; event: AccountEvent }[];
} {
  const published: { environment: string; event: AccountEvent }[] = [];
  return {
    events: {
      async publish(environment, event) {
        published.push({ environment, event: structuredClone(event) });
      },
    },
    published,
  };
}

/** An OAuth client whose answers the test gives, keeping every call. */
export function fakeOAuthClient(answers: {
  exchangeCode?: (grant: { code: string; redirectUri: string; codeVerifier?: string }) => Promise<TokenOutcome>;
  refresh?: (refreshToken: string) => Promise<TokenOutcome>;
}): OAuthClient & {
  exchanges: { settings: OAuth2Settings; clientSecret: string; grant: Parameters<OAuthClient["exchangeCode"]>[2] }[];
  refreshes: { settings: OAuth2Settings; clientSecret: string; refreshToken: string }[];
} {
  const exchanges: {
    settings: OAuth2Settings;
    clientSecret: string;
    grant: Parameters<OAuthClient["exchangeCode"]>[2];
  }[] = [];
  const refreshes: { settings: OAuth2Settings; clientSecret: string; refreshToken: string }[] = [];
  return {
    exchanges,
    refreshes,
    async exchangeCode(settings, clientSecret, grant) {
      exchanges.push({ settings, clientSecret, grant });
      if (!answers.exchangeCode) throw new Error("unexpected code exchange");
      return answers.exchangeCode(grant);
    },
    async refresh(settings, clientSecret, refreshToken) {
      refreshes.push({ settings, clientSecret, refreshToken });
      if (!answers.refresh) throw new Error("unexpected refresh");
      return answers.refresh(refreshToken);
    },
  };
}

/** Real page tokens under a random key, every environment in its first incarnation. */
export function testPageTokens(): PageTokens {
  return createPageTokens({ key: randomBytes(32), incarnation: () => "1" });
}

/** An environment record as the directory and the handlers see it: active, built on 2030-01-01. */
export function environmentRecord(name: string, overrides: Partial<Environment> = {}): Environment {
  const time = new Date(Date.UTC(2030, 0, 1));
  return {
    name,
    displayName: name,
    description: "",
    settings: {},
    builtIn: false,
    state: "active",
    dataKey: { wrapped: `wrapped-${name}-1`, masterKeyId: "test-master" },
    createTime: time,
    updateTime: time,
    version: 1,
    ...overrides,
  };
}
