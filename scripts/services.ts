/**
 * Brings up what roomkey needs locally, runs a command with it, and stops what
 * it started when the command ends. Used by `npm start`, `npm test`, the
 * benchmarks and CI.
 *
 *   tsx scripts/services.ts exec [--local-secrets] -- <command> [args...]
 *
 * MongoDB-compatible: MONGODB_URL if set; else 127.0.0.1:27017 if it answers;
 * else FerretDB 1.24.2 (built by scripts/install-ferretdb.sh when missing) on
 * the machine's PostgreSQL when one answers, else on SQLite under .data/.
 * Redis: REDIS_URL if set; else 127.0.0.1:6379 if it answers; else redis-server.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join, resolve } from "node:path";
import { MongoClient } from "mongodb";

const root = resolve(import.meta.dirname, "..");
const dataDir = join(root, ".data");

function log(message: string): void {
  process.stderr.write(`services: ${message}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends `payload` to host:port and resolves with the first reply, or undefined. */
function talk(port: number, payload: string, timeoutMs = 1_000): Promise<string | undefined> {
  return new Promise((done) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const finish = (value: string | undefined) => {
      socket.destroy();
      done(value);
    };
    socket.setTimeout(timeoutMs, () => finish(undefined));
    socket.once("error", () => finish(undefined));
    socket.once("connect", () => (payload ? socket.write(payload) : finish("")));
    socket.once("data", (data) => finish(data.toString()));
  });
}

async function mongoAnswers(url: string): Promise<boolean> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 1_500, connectTimeoutMS: 1_500 });
  try {
    await client.db("admin").command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await client.close();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000}s`);
}

/** Makes sure the machine's PostgreSQL (trust auth) has the database; false when there is none. */
async function postgresDatabase(name: string): Promise<boolean> {
  if ((await talk(5432, "")) === undefined) return false;
  const psql = (sql: string) =>
    spawnSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql], { encoding: "utf8" });
  const exists = psql(`SELECT 1 FROM pg_database WHERE datname = '${name}'`);
  if (exists.error || exists.status !== 0) return false;
  if (exists.stdout.trim() === "1") return true;
  const create = psql(`CREATE DATABASE "${name}"`);
  return create.status === 0 || /already exists/.test(create.stderr);
}

interface Started {
  url: string;
  child?: ChildProcess;
}

async function ensureMongo(): Promise<Started> {
  if (process.env.MONGODB_URL) return { url: process.env.MONGODB_URL };
  const url = "mongodb://127.0.0.1:27017/";
  if (await mongoAnswers(url)) {
    log("MongoDB-compatible server already answers on 127.0.0.1:27017");
    return { url };
  }
  let binary: string;
  try {
    binary = execFileSync(join(root, "scripts", "install-ferretdb.sh"), {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
  } catch {
    throw new Error(
      "no MongoDB: set MONGODB_URL, or run `docker compose up -d mongo redis`, or install Go so FerretDB can be built",
    );
  }
  const state = join(dataDir, "ferretdb");
  mkdirSync(state, { recursive: true });
  const args = [
    "--listen-addr=127.0.0.1:27017",
    "--telemetry=disable",
    "--debug-addr=-",
    `--state-dir=${state}`,
    "--log-level=error",
  ];
  if (await postgresDatabase("roomkey_ferretdb")) {
    args.push("--handler=postgresql", "--postgresql-url=postgres://postgres@127.0.0.1:5432/roomkey_ferretdb");
    log("starting FerretDB on PostgreSQL 127.0.0.1:5432 (database roomkey_ferretdb)");
  } else {
    const sqlite = join(state, "sqlite");
    mkdirSync(sqlite, { recursive: true });
    args.push("--handler=sqlite", `--sqlite-url=file:${sqlite}/`);
    log(`starting FerretDB on SQLite in ${sqlite}`);
  }
  const child = spawn(binary, args, { stdio: ["ignore", "inherit", "inherit"] });
  await waitFor("FerretDB", () => mongoAnswers(url), child, 30_000);
  return { url, child };
}

async function ensureRedis(): Promise<Started> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL };
  const url = "redis://127.0.0.1:6379";
  const pong = async () => (await talk(6379, "PING\r\n"))?.startsWith("+PONG") ?? false;
  if (await pong()) {
    log("Redis already answers on 127.0.0.1:6379");
    return { url };
  }
  const which = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (which.status !== 0) {
    throw new Error("no Redis: set REDIS_URL, or run `docker compose up -d mongo redis`, or install redis-server");
  }
  const dir = join(dataDir, "redis");
  mkdirSync(dir, { recursive: true });
  log("starting redis-server on 127.0.0.1:6379");
  const child = spawn(
    "redis-server",
    [
      "--port",
      "6379",
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--maxmemory-policy",
      "noeviction",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  await waitFor("redis-server", pong, child, 15_000);
  return { url, child };
}

/** A secret kept under .data/ for local runs, created once. */
function localSecret(file: string, make: () => string): string {
  const path = join(dataDir, file);
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path, `${make()}\n`, { mode: 0o600 });
  }
  return readFileSync(path, "utf8").trim();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const separator = args.indexOf("--");
  if (args[0] !== "exec" || separator < 0 || separator === args.length - 1) {
    process.stderr.write("usage: tsx scripts/services.ts exec [--local-secrets] -- <command> [args...]\n");
    process.exit(2);
  }
  const options = args.slice(1, separator);
  const [command, ...commandArgs] = args.slice(separator + 1) as [string, ...string[]];

  const started: ChildProcess[] = [];
  const stopAll = () => {
    for (const child of started) if (child.exitCode === null) child.kill("SIGTERM");
  };
  let env: NodeJS.ProcessEnv;
  try {
    const mongo = await ensureMongo();
    if (mongo.child) started.push(mongo.child);
    const redis = await ensureRedis();
    if (redis.child) started.push(redis.child);
    env = { ...process.env, MONGODB_URL: mongo.url, REDIS_URL: redis.url };
  } catch (error) {
    stopAll();
    log(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
  if (options.includes("--local-secrets")) {
    if (!env.ROOMKEY_ADMIN_KEY) {
      env.ROOMKEY_ADMIN_KEY = localSecret("admin-key", () => randomBytes(32).toString("base64url"));
      log(`admin key: ${join(dataDir, "admin-key")} (export ROOMKEY_ADMIN_KEY="$(cat .data/admin-key)")`);
    }
    if (!env.ROOMKEY_MASTER_KEY) {
      env.ROOMKEY_MASTER_KEY = localSecret("master-key", () => randomBytes(32).toString("base64"));
      log(`master key: ${join(dataDir, "master-key")}`);
    }
  }

  const child = spawn(command, commandArgs, { stdio: "inherit", env });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => child.kill(signal));
  }
  child.on("exit", (code, signal) => {
    stopAll();
    process.exit(code ?? (signal ? 1 : 0));
  });
}

await main();
