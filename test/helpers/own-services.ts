import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";

/** A TCP port the OS says is free now. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms`);
}

/** A backend this test owns: it may kill, pause and restart it without disturbing other tests. */
export interface OwnService {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  dispose(): Promise<void>;
}

function ownService(
  url: string,
  launch: () => ChildProcess,
  answers: () => Promise<boolean>,
  name: string,
  cleanup = () => {},
) {
  let child: ChildProcess | undefined;
  const service: OwnService = {
    url,
    async start() {
      child = launch();
      await until(answers, 30_000, name);
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((r) => running.once("exit", r));
      running.kill("SIGKILL");
      await exited;
    },
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    async dispose() {
      child?.kill("SIGCONT");
      await service.stop();
      cleanup();
    },
  };
  return service;
}

/** A redis-server of the test's own, on a free port. */
export async function ownRedis(): Promise<OwnService> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const service = ownService(
    url,
    () =>
      spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: "ignore",
      }),
    async () => {
      const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on("error", () => undefined);
      try {
        await client.connect();
        return (await client.ping()) === "PONG";
      } catch {
        return false;
      } finally {
        client.disconnect();
      }
    },
    "redis-server",
  );
  await service.start();
  return service;
}

/** Runs SQL on the machine's PostgreSQL (127.0.0.1:5432, trust auth); false when there is none or it fails. */
function psql(sql: string): boolean {
  const run = spawnSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return !run.error && run.status === 0;
}

/**
 * FerretDB of the test's own, on a free port: on SQLite in a temporary
 * directory, or with `backend: "postgresql"` on a database of its own in the
 * machine's PostgreSQL (as `npm test` runs it), falling back to SQLite when
 * there is no PostgreSQL. Killing it leaves its data, like a crashed server.
 */
export async function ownFerretDb(options: { backend?: "sqlite" | "postgresql" } = {}): Promise<OwnService> {
  const binary = execFileSync(resolve(import.meta.dirname, "../../scripts/install-ferretdb.sh"), {
    encoding: "utf8",
  }).trim();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "roomkey-ferretdb-"));
  const url = `mongodb://127.0.0.1:${port}/`;
  const database = `roomkey_own_${port}_${process.pid}`;
  const postgres = options.backend === "postgresql" && psql(`CREATE DATABASE "${database}"`);
  const backend = postgres
    ? ["--handler=postgresql", `--postgresql-url=postgres://postgres@127.0.0.1:5432/${database}`]
    : ["--handler=sqlite", `--sqlite-url=file:${dir}/`];
  const service = ownService(
    url,
    () =>
      spawn(
        binary,
        [
          `--listen-addr=127.0.0.1:${port}`,
          ...backend,
          `--state-dir=${dir}`,
          "--telemetry=disable",
          "--debug-addr=-",
          "--log-level=error",
        ],
        { stdio: "ignore" },
      ),
    async () => {
      const client = new MongoClient(url, { serverSelectionTimeoutMS: 500, connectTimeoutMS: 500 });
      try {
        await client.db("admin").command({ ping: 1 });
        return true;
      } catch {
        return false;
      } finally {
        await client.close();
      }
    },
    "FerretDB",
    () => {
      rmSync(dir, { recursive: true, force: true });
      if (postgres) psql(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    },
  );
  await service.start();
  return service;
}
