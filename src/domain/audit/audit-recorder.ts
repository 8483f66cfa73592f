import { settlesWithin } from "../../async.js";
import type { Clock } from "../clock.js";
import { newId } from "../ids.js";
import type { AuditEntry } from "./audit.js";
import type { AuditStore, WorkerAudit } from "./ports.js";

/** An entry as its recorder is handed it: the recorder gives it its id and time. */
export type AuditFacts = Omit<AuditEntry, "id" | "time">;

export interface AuditRecorderDeps {
  store: Pick<AuditStore, "insertMany">;
  /**
   * Whether the environment exists now. Entries of one that does not are
   * dropped, never written: a write would create its database (a deleted
   * environment's, or a name a caller made up).
   */
  exists(environment: string): boolean | Promise<boolean>;
  clock: Clock;
  /** Entries held in memory at most: refusals waiting for their batch and entries whose write failed. */
  maxBuffered: number;
  /** Of those, at most this many of one environment: a flood in one cannot crowd out another's. Default: `maxBuffered`. */
  maxBufferedPerEnvironment?: number;
  /**
   * How long a call waits for its entry's write: past it the call answers and
   * the entries are kept for the next flush (a retry of a write that did land
   * is a duplicate key, ignored). Default: no limit.
   */
  writeTimeoutMs?: number;
  /** How long the last flush at shutdown may take. Default: no limit. */
  finalFlushMs?: number;
  /** Entries of one environment written in one round trip at most, when the buffer is flushed. */
  maxBatch: number;
  warn(message: string, details: Record<string, unknown>): void;
  /** Told of entries dropped (the buffer was full) and of failed writes (metrics). */
  observe?: {
    dropped(reason: "buffer_full", count: number): void;
    writeFailed(count: number): void;
  };
}

export type AuditRecorder = ReturnType<typeof createAuditRecorder>;

interface Batch {
  entries: AuditEntry[];
  done: Promise<void>;
  resolve(): void;
}

function newBatch(): Batch {
  let resolve = () => {};
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  return { entries: [], done, resolve };
}

/**
 * Writes audit entries to each environment's log, two ways:
 *
 * - `record`: for calls that changed something and for the worker's state
 *   changes, awaited by the caller before it answers. Entries of one
 *   environment that arrive while its previous write is in flight are
 *   written together in one `insertMany`, so a burst of calls costs about
 *   one round trip per environment per write time, not one per call.
 * - `note`: for refusals (credentials refused before anything ran), never
 *   awaited, held in a bounded buffer and written by `flush` in batches. A
 *   refusal with an aggregation key (a peer the failure throttle refuses)
 *   adds to one entry's `count` instead of making another. Beyond the bound
 *   entries are dropped and counted: an unauthenticated caller cannot make
 *   roomkey write without limit.
 *
 * A write that fails never fails the call that waited for it (the change it
 * records has happened): it is logged and counted, and its entries wait in
 * the buffer for the next flush.
 */
export function createAuditRecorder(deps: AuditRecorderDeps) {
  const { store, clock, maxBuffered, maxBatch } = deps;
  const maxPerEnvironment = deps.maxBufferedPerEnvironment ?? maxBuffered;
  /** The entries waiting for each environment's next awaited write. */
  const open = new Map<string, Batch>();
  const writing = new Set<string>();
  /** Refusals and retries, by environment; and the aggregated refusals, by key. */
  let buffered = new Map<string, AuditEntry[]>();
  let aggregates = new Map<string, { environment: string; entry: AuditEntry }>();
  let bufferedCount = 0;
  let bufferedIn = new Map<string, number>();

  /** Takes a place in the buffer for one entry of the environment, or counts it dropped. */
  function admit(environment: string): boolean {
    const inEnvironment = bufferedIn.get(environment) ?? 0;
    if (bufferedCount >= maxBuffered || inEnvironment >= maxPerEnvironment) {
      deps.observe?.dropped("buffer_full", 1);
      return false;
    }
    bufferedCount++;
    bufferedIn.set(environment, inEnvironment + 1);
    return true;
  }

  function entryOf(facts: AuditFacts): AuditEntry {
    const time = clock.now();
    return { id: newId("ae", time), time, ...facts, details: { ...facts.details } };
  }

  /** Writes entries, or keeps them for the next flush if the write fails. Never throws. */
  async function writeOrKeep(environment: string, entries: AuditEntry[]): Promise<void> {
    try {
      if (!(await deps.exists(environment))) return;
      const written = store.insertMany(environment, entries);
      if (deps.writeTimeoutMs !== undefined && !(await settlesWithin(written, deps.writeTimeoutMs))) {
        written.catch(() => {}); // settles later; its entries are kept and written again (duplicates ignored)
        throw new Error(`the write took over ${deps.writeTimeoutMs} ms`);
      }
      await written;
    } catch (error) {
      deps.observe?.writeFailed(entries.length);
      deps.warn("could not write audit entries; they are retried with the next flush", {
        err: error,
        environment,
        entries: entries.length,
      });
      for (const entry of entries) keep(environment, entry);
    }
  }

  function keep(environment: string, entry: AuditEntry): boolean {
    if (!admit(environment)) return false;
    let list = buffered.get(environment);
    if (!list) {
      list = [];
      buffered.set(environment, list);
    }
    list.push(entry);
    return true;
  }

  async function drain(environment: string): Promise<void> {
    if (writing.has(environment)) return;
    writing.add(environment);
    try {
      for (let batch = open.get(environment); batch; batch = open.get(environment)) {
        open.delete(environment);
        await writeOrKeep(environment, batch.entries);
        batch.resolve();
      }
    } finally {
      writing.delete(environment);
    }
  }

  /** Records an entry; resolves once it was written (or, if the write failed, kept for a retry). */
  function record(environment: string, facts: AuditFacts): Promise<void> {
    let batch = open.get(environment);
    if (!batch) {
      batch = newBatch();
      open.set(environment, batch);
      // Entries of calls ending in the same turn join before the write starts.
      if (!writing.has(environment)) queueMicrotask(() => void drain(environment));
    }
    batch.entries.push(entryOf(facts));
    return batch.done;
  }

  /**
   * Notes a refusal for the next flush; with `aggregate`, one entry per key
   * and flush carries a `count`. Returns false when the buffer was full.
   */
  function note(environment: string, facts: AuditFacts, aggregate?: string): boolean {
    if (aggregate !== undefined) {
      const key = `${environment}\u0000${aggregate}`;
      const found = aggregates.get(key);
      if (found) {
        found.entry.details.count = String(Number(found.entry.details.count ?? "1") + 1);
        return true;
      }
      if (!admit(environment)) return false;
      const entry = entryOf(facts);
      entry.details.count = "1";
      aggregates.set(key, { environment, entry });
      return true;
    }
    return keep(environment, entryOf(facts));
  }

  let flushing: Promise<void> | undefined;

  /** Writes what the buffer holds, in batches of at most `maxBatch` per environment; flushes never overlap. */
  async function flush(): Promise<void> {
    while (flushing) await flushing;
    flushing = (async () => {
      const batches = buffered;
      for (const { environment, entry } of aggregates.values()) {
        const list = batches.get(environment) ?? [];
        list.push(entry);
        batches.set(environment, list);
      }
      buffered = new Map();
      aggregates = new Map();
      bufferedCount = 0;
      bufferedIn = new Map();
      for (const [environment, entries] of batches) {
        for (let i = 0; i < entries.length; i += maxBatch) {
          await writeOrKeep(environment, entries.slice(i, i + maxBatch));
        }
      }
    })().finally(() => {
      flushing = undefined;
    });
    return flushing;
  }

  let timer: NodeJS.Timeout | undefined;
  let flushers = 0;

  /**
   * Flushes the buffer every `everyMs` until the returned stop is called
   * (which flushes once more). The API and the worker stages each start it;
   * one timer serves both in a process that runs the two.
   */
  function keepFlushing(everyMs: number): () => Promise<void> {
    flushers++;
    timer ??= setInterval(() => {
      if (flushing === undefined && bufferedCount > 0) void flush();
    }, everyMs);
    timer.unref();
    let stopped = false;
    return async () => {
      if (stopped) return;
      stopped = true;
      if (--flushers === 0) {
        clearInterval(timer);
        timer = undefined;
      }
      const last = flush();
      if (deps.finalFlushMs === undefined) return last;
      if (!(await settlesWithin(last, deps.finalFlushMs))) {
        deps.warn("audit entries still unwritten at shutdown were left", { pending: bufferedCount });
      }
    };
  }

  return {
    record,
    note,
    flush,
    keepFlushing,
    /** True while a flush writes: a timer skips its turn. */
    busy: () => flushing !== undefined,
    bufferedCount: () => bufferedCount,
  };
}

/** The worker's port onto a recorder: entries with actor WORKER, no request id, no peer. */
export function workerAudit(recorder: Pick<AuditRecorder, "record">): WorkerAudit {
  return {
    record(environment, { method, resource, details }) {
      return recorder.record(environment, {
        actorKind: "worker",
        actorId: "",
        method,
        resource,
        requestId: "",
        outcome: "OK",
        reason: "",
        peer: "",
        details: details ?? {},
      });
    },
  };
}
