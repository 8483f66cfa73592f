/**
 * Reading a roomkey child process's memory from outside, over the V8
 * inspector: the child runs with `--expose-gc --inspect=127.0.0.1:0` (a
 * random loopback port, that child only), and this process evaluates `gc()`
 * and `process.memoryUsage()` in it, so roomkey needs no hook of its own.
 * Needs WebSocket: Node 20 has it behind `--experimental-websocket`.
 */
import { readFileSync } from "node:fs";

/** A just-enough Chrome DevTools Protocol client over the child's inspector WebSocket. */
export class Inspector {
  private next = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listeners = new Map<string, (params: Record<string, unknown>) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
      };
      if (message.id !== undefined) {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(message.error.message));
        else waiter?.resolve(message.result);
      } else if (message.method) {
        this.listeners.get(message.method)?.(message.params ?? {});
      }
    });
  }

  static async open(url: string): Promise<Inspector> {
    const socket = new WebSocket(url);
    await new Promise((done, fail) => {
      socket.addEventListener("open", done, { once: true });
      socket.addEventListener("error", () => fail(new Error(`inspector ${url} unreachable`)), { once: true });
    });
    return new Inspector(socket);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** Evaluates an expression in the child's global scope and returns its (JSON) value. */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{
      result: { value?: unknown };
      exceptionDetails?: { text: string };
    }>("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.text}`);
    return result.value as T;
  }

  /** A heap snapshot (taking one collects garbage first), parsed. */
  async heapSnapshot(): Promise<HeapSnapshot> {
    const chunks: string[] = [];
    this.listeners.set("HeapProfiler.addHeapSnapshotChunk", (params) => chunks.push(String(params.chunk)));
    await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    this.listeners.delete("HeapProfiler.addHeapSnapshotChunk");
    return JSON.parse(chunks.join("")) as HeapSnapshot;
  }

  close(): void {
    this.socket.close();
  }
}

export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Live objects per constructor name, and closures per function name. */
export function countObjects(heap: HeapSnapshot): Map<string, number> {
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const counts = new Map<string, number>();
  for (let i = 0; i < heap.nodes.length; i += fields.length) {
    const type = types[heap.nodes[i + typeAt] ?? 0];
    if (type !== "object" && type !== "closure") continue;
    const key = `${type === "closure" ? "closure " : ""}${heap.strings[heap.nodes[i + nameAt] ?? 0]}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export interface Memory {
  rss: number;
  rssAnon: number;
  rssFile: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  handles: number;
}

/** A figure of /proc/<pid>/status, in bytes. */
export function procStatus(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) * 1024;
}

/**
 * Memory of the child after full collections: one, a second of quiet (V8
 * unmaps freed pages on a background thread, and finalizers run), another.
 */
export async function measure(inspector: Inspector, pid: number): Promise<Memory> {
  const memory = await inspector.evaluate<Omit<Memory, "rssAnon" | "rssFile">>(
    `(async () => {
      gc();
      await new Promise((r) => setTimeout(r, 1000));
      gc();
      await new Promise((r) => setTimeout(r, 100));
      const m = process.memoryUsage();
      return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external,
               handles: process._getActiveHandles().length };
    })()`,
  );
  return { ...memory, rssAnon: procStatus(pid, "RssAnon"), rssFile: procStatus(pid, "RssFile") };
}

/** The inspector's WebSocket address, from what a child started with `--inspect` writes to stderr. */
export function inspectorUrlIn(stderr: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
}
