/**
 * Brings up what roomkey needs locally, runs a command with it, and stops what
 * it started when the command ends. Used by scripts/start, scripts/test, the
 * benchmarks and CI; `reset` wipes this checkout's local data (scripts/reset).
 *
 *   node --import tsx scripts/services.ts exec [--local-secrets] -- <command> [args...]
 *   node --import tsx scripts/services.ts reset
 *
 * MongoDB-compatible: MONGODB_URL if set; else 127.0.0.1:27017 if it answers;
 * else FerretDB 1.24.2 (built by scripts/install-ferretdb.sh when missing)
 * there, on the machine's PostgreSQL when one answers (a database named after
 * this checkout, `roomkey_ferretdb_<id>`), else on SQLite in the data directory.
 * Redis: REDIS_URL if set; else 127.0.0.1:6379 if it answers; else redis-server there.
 *
 * Local state lives in the data directory, `.data/` in the checkout: the
 * checkout's id (`rk` and 8 random characters, made once), and with
 * `--local-secrets` the admin and master keys; with it, roomkey's database and
 * queue prefix is the id too (unless ROOMKEY_DB_PREFIX / ROOMKEY_QUEUE_PREFIX
 * are set), so a new clone never meets an old clone's data, and two checkouts
 * sharing one MongoDB or Redis do not share databases or keys.
 *
 * Signals: SIGINT and SIGTERM are passed on to the command, SIGHUP as SIGTERM;
 * the services started here stop once the command has exited. Every child runs
 * in a process group of its own (a terminal's Ctrl-C reaches this process only,
 * so the command stops before its database), and on Linux under
 * `setpriv --pdeathsig SIGTERM`: a child gets SIGTERM when this process dies,
 * even of SIGKILL.
 *
 * For tests and for a second local stack: ROOMKEY_LOCAL_DATA_DIR (instead of
 * .data/), ROOMKEY_LOCAL_MONGO_PORT (instead of 27017) and
 * ROOMKEY_LOCAL_REDIS_PORT (instead of 6379).
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { constants } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";

const root = resolve(import.meta.dirname, "..");

interface Local {
  dataDir: string;
  mongoPort: number;
  redisPort: number;
}

function localSettings(): Local {
  const port = (name: string, fallback: number) => {
    const value = process.env[name];
    if (value === undefined || value === "") return fallback;
    const n = Number(value);
    if (!/^\d{1,5}$/.test(value) || n < 1 || n > 65535)
      throw new Error(`${name} must be a port number, not "${value}"`);
    return n;
  };
  return {
    dataDir: resolve(process.env.ROOMKEY_LOCAL_DATA_DIR || join(root, ".data")),
    mongoPort: port("ROOMKEY_LOCAL_MONGO_PORT", 27017),
    redisPort: port("ROOMKEY_LOCAL_REDIS_PORT", 6379),
  };
}

function log(message: string): void {
  process.stderr.write(`services: ${message}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends `payload` to 127.0.0.1:port and resolves with the first reply ("" for none asked), or undefined. */
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

/** A MongoDB on 127.0.0.1:port: a refused connection is known at once, not after server selection gives up. */
async function localMongoAnswers(port: number): Promise<boolean> {
  return (await talk(port, "")) !== undefined && (await mongoAnswers(`mongodb://127.0.0.1:${port}/`));
}

async function redisAnswers(port: number): Promise<boolean> {
  return (await talk(port, "PING\r\n"))?.startsWith("+PONG") ?? false;
}

/** The names this checkout's local data goes by, all derived from its id. */
interface Checkout {
  id: string;
  dbPrefix: string;
  queuePrefix: string;
  /** FerretDB's database in the machine's PostgreSQL. */
  postgresDatabase: string;
}

function checkoutNames(id: string): Checkout {
  return { id, dbPrefix: id, queuePrefix: id, postgresDatabase: `roomkey_ferretdb_${id}` };
}

const idFile = "checkout-id";
/** Fits ROOMKEY_DB_PREFIX (^[a-z][a-z0-9]{0,15}$), ROOMKEY_QUEUE_PREFIX and a PostgreSQL name unquoted. */
const idPattern = /^rk[a-z0-9]{8}$/;

/** The checkout's id, read from the data directory; undefined when there is none yet. */
function readCheckout(dataDir: string): Checkout | undefined {
  const path = join(dataDir, idFile);
  if (!existsSync(path)) return undefined;
  const id = readFileSync(path, "utf8").trim();
  if (!idPattern.test(id))
    throw new Error(`${path} holds "${id}", not an id like rk1a2b3c4d: remove it or run scripts/reset`);
  return checkoutNames(id);
}

/** The checkout's id, made (once) when missing. */
function checkout(dataDir: string): Checkout {
  const existing = readCheckout(dataDir);
  if (existing) return existing;
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const id = `rk${[...randomBytes(8)].map((b) => alphabet[b % alphabet.length]).join("")}`;
  mkdirSync(dataDir, { recursive: true });
  // "wx": two first runs at once keep the id the first one wrote.
  try {
    writeFileSync(join(dataDir, idFile), `${id}\n`, { flag: "wx" });
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "EEXIST")) throw error;
  }
  const names = readCheckout(dataDir) ?? checkoutNames(id);
  if (existsSync(join(dataDir, "master-key"))) {
    log(
      `this checkout's local data is now named after it (${names.id}); what it wrote before under the prefix ` +
        "roomkey (PostgreSQL database roomkey_ferretdb) stays where it was",
    );
  }
  return names;
}

/** Runs SQL on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth). */
function psql(sql: string, database = "postgres") {
  return spawnSync(
    "psql",
    ["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
    {
      encoding: "utf8",
      timeout: 15_000,
    },
  );
}

async function postgresAnswers(): Promise<boolean> {
  if ((await talk(5432, "")) === undefined) return false;
  const run = psql("SELECT 1");
  return !run.error && run.status === 0;
}

/** Makes sure the machine's PostgreSQL has the database; false when there is no PostgreSQL (or psql). */
async function postgresDatabase(name: string): Promise<boolean> {
  if (!(await postgresAnswers())) return false;
  const exists = psql(`SELECT 1 FROM pg_database WHERE datname = '${name}'`);
  if (exists.status !== 0) return false;
  if (exists.stdout.trim() === "1") return true;
  const create = psql(`CREATE DATABASE "${name}"`);
  return create.status === 0 || /already exists/.test(create.stderr);
}

/**
 * `setpriv --pdeathsig SIGTERM` (util-linux): a child started through it gets
 * SIGTERM when this process dies, however it dies. Linux only.
 */
const deathSignal: readonly string[] = (() => {
  if (process.platform !== "linux") return [];
  const probe = spawnSync("setpriv", ["--pdeathsig", "SIGTERM", "--", "true"]);
  if (probe.status === 0) return ["setpriv", "--pdeathsig", "SIGTERM", "--"];
  log("setpriv (util-linux) is missing: if this process is killed with SIGKILL, what it started keeps running");
  return [];
})();

/** Everything this process started and must stop before it exits (services, the installer, the command), by name. */
const children = new Map<ChildProcess, string>();
let exiting = false;

/** Starts a child in a process group of its own, under setpriv --pdeathsig where there is one. */
function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  if (exiting) throw new Error("stopping");
  const [wrapper, ...wrapperArgs] = deathSignal;
  const child = wrapper
    ? spawn(wrapper, [...wrapperArgs, command, ...args], { ...options, detached: true })
    : spawn(command, args, { ...options, detached: true });
  children.set(child, name);
  child.once("exit", () => children.delete(child));
  return child;
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Signals the child's whole process group (the installer's `go build` too). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Gone already.
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
async function stopChild(child: ChildProcess, name: string, graceMs = 5_000): Promise<void> {
  if (child.pid === undefined || !running(child)) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  signalGroup(child, "SIGTERM");
  const timer = setTimeout(() => {
    log(`${name} did not stop within ${graceMs / 1000}s; killing it`);
    signalGroup(child, "SIGKILL");
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stops every child still running (at once: the command has exited or never started), then exits with `code`. */
function stopAllAndExit(code: number): void {
  if (exiting) return;
  exiting = true;
  Promise.all([...children].map(([child, name]) => stopChild(child, name))).finally(() => process.exit(code));
}

async function waitFor(what: string, check: () => Promise<boolean>, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(child)) throw new Error(`${what} exited with code ${child.exitCode ?? child.signalCode}`);
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000}s`);
}

/** Runs scripts/install-ferretdb.sh (a build on the first run); resolves with the binary's path. */
async function installFerretDb(): Promise<string> {
  const installer = spawnChild("install-ferretdb.sh", join(root, "scripts", "install-ferretdb.sh"), [], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  installer.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise<number | null>((done) => {
    installer.once("error", () => done(null));
    installer.once("exit", (exitCode) => done(exitCode));
  });
  if (code !== 0) {
    throw new Error(
      "no MongoDB: set MONGODB_URL, or run `docker compose up -d mongo redis`, or install Go so FerretDB can be built",
    );
  }
  return out.trim();
}

/**
 * FerretDB's PostgreSQL handler logs every SQL statement that fails at ERROR
 * (pgx's query tracer), with the statement's arguments: so each duplicate key
 * roomkey expects and handles (MongoDB's 11000, PostgreSQL's SQLSTATE 23505:
 * the claim documents of versioned.ts, idempotency keys) printed a line with
 * the document in it. Those lines are dropped; every other line passes.
 *
 * A line: `<time>\tERROR\t<file:line>\tQuery\t{"err":{"Code":"23505",...},...}`.
 */
export function isExpectedFerretDbLine(line: string): boolean {
  const [, level, , message, attributes] = line.split("\t");
  if (level !== "ERROR" || message !== "Query" || attributes === undefined) return false;
  try {
    const parsed: unknown = JSON.parse(attributes);
    const err = typeof parsed === "object" && parsed !== null && "err" in parsed ? parsed.err : undefined;
    return typeof err === "object" && err !== null && "Code" in err && err.Code === "23505";
  } catch {
    return false;
  }
}

/** Copies FerretDB's stderr to ours, line by line, without the lines `isExpectedFerretDbLine` drops. */
function filterFerretDbLog(stream: NodeJS.ReadableStream): void {
  let buffer = "";
  const pass = (line: string) => {
    if (!isExpectedFerretDbLine(line)) process.stderr.write(`${line}\n`);
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) pass(line);
  });
  stream.on("end", () => {
    if (buffer) pass(buffer);
  });
}

async function ensureMongo(local: Local): Promise<string> {
  if (process.env.MONGODB_URL) return process.env.MONGODB_URL;
  const address = `127.0.0.1:${local.mongoPort}`;
  const url = `mongodb://${address}/`;
  const answers = () => localMongoAnswers(local.mongoPort);
  if (await answers()) {
    log(`MongoDB-compatible server already answers on ${address}`);
    return url;
  }
  const binary = await installFerretDb();
  const state = join(local.dataDir, "ferretdb");
  mkdirSync(state, { recursive: true });
  const args = [
    `--listen-addr=${address}`,
    "--telemetry=disable",
    "--debug-addr=-",
    `--state-dir=${state}`,
    "--log-level=error",
  ];
  const { postgresDatabase: database } = checkout(local.dataDir);
  if (await postgresDatabase(database)) {
    args.push("--handler=postgresql", `--postgresql-url=postgres://postgres@127.0.0.1:5432/${database}`);
    log(`starting FerretDB on ${address}, on PostgreSQL 127.0.0.1:5432 (database ${database})`);
  } else {
    const sqlite = join(state, "sqlite");
    mkdirSync(sqlite, { recursive: true });
    args.push("--handler=sqlite", `--sqlite-url=file:${sqlite}/`);
    log(`starting FerretDB on ${address}, on SQLite in ${sqlite}`);
  }
  const child = spawnChild("FerretDB", binary, args, { stdio: ["ignore", "inherit", "pipe"] });
  if (child.stderr) filterFerretDbLog(child.stderr);
  watchService(child, "FerretDB");
  await waitFor("FerretDB", answers, child, 30_000);
  return url;
}

async function ensureRedis(local: Local): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  const address = `127.0.0.1:${local.redisPort}`;
  if (await redisAnswers(local.redisPort)) {
    log(`Redis already answers on ${address}`);
    return `redis://${address}`;
  }
  if (spawnSync("sh", ["-c", "command -v redis-server"]).status !== 0) {
    throw new Error("no Redis: set REDIS_URL, or run `docker compose up -d mongo redis`, or install redis-server");
  }
  const dir = join(local.dataDir, "redis");
  mkdirSync(dir, { recursive: true });
  log(`starting redis-server on ${address}`);
  const child = spawnChild(
    "redis-server",
    "redis-server",
    [
      "--port",
      String(local.redisPort),
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
  watchService(child, "redis-server");
  await waitFor("redis-server", () => redisAnswers(local.redisPort), child, 15_000);
  return `redis://${address}`;
}

/** Says so when a service dies on its own while the command runs. */
function watchService(child: ChildProcess, name: string): void {
  child.once("exit", (code, signal) => {
    if (!exiting) log(`${name} exited (${signal ?? `code ${code}`}) while the command was running`);
  });
}

/** A secret kept in the data directory for local runs, created once. */
function localSecret(dataDir: string, file: string, make: () => string): string {
  const path = join(dataDir, file);
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path, `${make()}\n`, { mode: 0o600 });
  }
  return readFileSync(path, "utf8").trim();
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? constants.signals[signal] : 0);
}

async function exec(options: string[], command: string, commandArgs: string[]): Promise<void> {
  let commandChild: ChildProcess | undefined;
  // Installed first: a signal while FerretDB is being built or started stops it too.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (commandChild) {
        // The command stops the way it knows; the services stop once it has exited (below).
        commandChild.kill(signal === "SIGHUP" ? "SIGTERM" : signal);
      } else {
        stopAllAndExit(128 + constants.signals[signal]);
      }
    });
  }

  const local = localSettings();
  const env: NodeJS.ProcessEnv = { ...process.env };
  try {
    env.MONGODB_URL = await ensureMongo(local);
    env.REDIS_URL = await ensureRedis(local);
  } catch (error) {
    if (exiting) return;
    log(error instanceof Error ? error.message : String(error));
    stopAllAndExit(1);
    return;
  }
  if (options.includes("--local-secrets")) {
    const { dataDir } = local;
    // Before the keys: a master key without an id is a checkout from before ids (checkout() says so).
    const names = checkout(dataDir);
    if (!env.ROOMKEY_ADMIN_KEY) {
      env.ROOMKEY_ADMIN_KEY = localSecret(dataDir, "admin-key", () => randomBytes(32).toString("base64url"));
      const path = join(dataDir, "admin-key");
      const shown = relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);
      log(`admin key: ${path} (export ROOMKEY_ADMIN_KEY="$(cat ${shown})")`);
    }
    // Several keys configured (ROOMKEY_MASTER_KEYS): they are the operator's, and one form only is allowed.
    if (!env.ROOMKEY_MASTER_KEY && !env.ROOMKEY_MASTER_KEYS) {
      env.ROOMKEY_MASTER_KEY = localSecret(dataDir, "master-key", () => randomBytes(32).toString("base64"));
      log(`master key: ${join(dataDir, "master-key")}`);
    }
    env.ROOMKEY_DB_PREFIX ||= names.dbPrefix;
    env.ROOMKEY_QUEUE_PREFIX ||= names.queuePrefix;
    log(
      `this checkout's data: databases ${env.ROOMKEY_DB_PREFIX}_*, Redis keys ${env.ROOMKEY_QUEUE_PREFIX}:* ` +
        "(scripts/reset wipes them and .data/)",
    );
  }
  if (exiting) return;

  const child = spawnChild(command, command, commandArgs, { stdio: "inherit", env });
  commandChild = child;
  child.once("error", (error) => {
    log(`could not run ${command}: ${error.message}`);
    stopAllAndExit(127);
  });
  child.once("exit", (code, signal) => stopAllAndExit(exitCodeOf(code, signal)));
}

/** FerretDB or redis-server processes started for this data directory that still run (Linux: from /proc). */
function servicesRunningOn(dataDir: string): string[] {
  if (process.platform !== "linux") return [];
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (args.some((arg) => arg === `--state-dir=${join(dataDir, "ferretdb")}` || arg === join(dataDir, "redis"))) {
      found.push(`${pid} (${args[0]})`);
    }
  }
  return found;
}

/**
 * Databases of other checkouts in this checkout's FerretDB store: a checkout
 * started while this one's FerretDB answered on 27017 used it, so its data
 * sits in this one's PostgreSQL database (a schema per database) or SQLite
 * directory (a file per database), and wiping the store would wipe it too.
 */
function otherCheckoutsData(names: Checkout, dataDir: string, ourPrefixes: readonly string[]): string[] {
  const databases: string[] = [];
  const sqlite = join(dataDir, "ferretdb", "sqlite");
  if (existsSync(sqlite)) {
    for (const file of readdirSync(sqlite))
      if (file.endsWith(".sqlite")) databases.push(file.slice(0, -".sqlite".length));
  }
  const schemas = psql("SELECT schema_name FROM information_schema.schemata", names.postgresDatabase);
  if (!schemas.error && schemas.status === 0) databases.push(...schemas.stdout.split("\n").map((line) => line.trim()));
  return databases.filter((name) => {
    const prefix = /^(rk[a-z0-9]{8})_/.exec(name)?.[1];
    return prefix !== undefined && !ourPrefixes.includes(prefix);
  });
}

/**
 * Wipes this checkout's local data: its MongoDB databases (`<prefix>_*`) and
 * Redis keys (`<queue prefix>:*`) wherever they answer now, its FerretDB
 * database in PostgreSQL, then the data directory. Refuses while a FerretDB or
 * redis-server of this checkout runs, and while its FerretDB holds another
 * checkout's databases.
 */
async function reset(): Promise<void> {
  const local = localSettings();
  const { dataDir } = local;
  const busy = servicesRunningOn(dataDir);
  if (busy.length > 0) {
    log(`this checkout's services still run (pids ${busy.join(", ")}): stop scripts/start (or the tests) first`);
    process.exit(1);
  }
  const names = readCheckout(dataDir);
  // Only what is named after this checkout's id: a prefix from the shell may name data shared on
  // purpose, or another deployment's on a MONGODB_URL / REDIS_URL, and is never reset's to drop.
  for (const variable of ["ROOMKEY_DB_PREFIX", "ROOMKEY_QUEUE_PREFIX"] as const) {
    const set = process.env[variable];
    if (set && set !== names?.id) {
      log(
        `${variable}=${set} is set: reset wipes only what is named after this checkout (${names?.id ?? "no id yet"}). ` +
          `Data under ${set} may be shared or another deployment's: drop it yourself, or unset ${variable}; nothing was wiped`,
      );
      process.exit(1);
    }
  }
  const dbPrefix = names?.dbPrefix;
  const queuePrefix = names?.queuePrefix;
  if (!names) log(`no checkout id in ${dataDir}: nothing in MongoDB, Redis or PostgreSQL is named after this checkout`);
  const others = names ? otherCheckoutsData(names, dataDir, [names.id, dbPrefix ?? names.id]) : [];
  if (others.length > 0) {
    log(
      `this checkout's FerretDB also holds other checkouts' databases (${others.join(", ")}): they started while it ` +
        "answered on 27017. Wiping it would wipe them. Start this checkout, run scripts/reset in theirs (it drops " +
        "their databases through this FerretDB), stop this one, then reset it; nothing was wiped",
    );
    process.exit(1);
  }
  let incomplete = false;

  if (dbPrefix) {
    const url = process.env.MONGODB_URL || `mongodb://127.0.0.1:${local.mongoPort}/`;
    if (await mongoAnswers(url)) {
      const mongo = new MongoClient(url);
      try {
        const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
        const ours = databases.map((d) => d.name).filter((name) => name.startsWith(`${dbPrefix}_`));
        for (const name of ours) await mongo.db(name).dropDatabase();
        log(`MongoDB: dropped ${ours.length} database(s) ${dbPrefix}_*${ours.length ? ` (${ours.join(", ")})` : ""}`);
      } finally {
        await mongo.close();
      }
    } else if (process.env.MONGODB_URL) {
      log(`MongoDB: ${url} does not answer; databases ${dbPrefix}_* there are left`);
      incomplete = true;
    } else {
      log(`MongoDB: nothing answers at ${url}; nothing to drop there`);
    }
  }

  if (queuePrefix) {
    const url = process.env.REDIS_URL || `redis://127.0.0.1:${local.redisPort}`;
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on("error", () => undefined);
    let connected = true;
    await redis.connect().catch(() => {
      connected = false;
    });
    if (connected) {
      try {
        let removed = 0;
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${queuePrefix}:*`, "COUNT", 1000);
          cursor = next;
          if (keys.length > 0) removed += await redis.unlink(...keys);
        } while (cursor !== "0");
        log(`Redis: removed ${removed} key(s) ${queuePrefix}:*`);
      } finally {
        redis.disconnect();
      }
    } else if (process.env.REDIS_URL) {
      log(`Redis: ${url} does not answer; keys ${queuePrefix}:* there are left`);
      incomplete = true;
    } else {
      log(`Redis: nothing answers at ${url}; nothing to remove there`);
    }
  }

  if (names && (await postgresAnswers())) {
    // Without FORCE: PostgreSQL refuses while a FerretDB still uses the database.
    const drop = psql(`DROP DATABASE IF EXISTS "${names.postgresDatabase}"`);
    if (drop.status !== 0) {
      log(`PostgreSQL: could not drop ${names.postgresDatabase}: ${drop.stderr.trim()}`);
      process.exit(1);
    }
    log(`PostgreSQL: dropped database ${names.postgresDatabase} (if it existed)`);
  }

  rmSync(dataDir, { recursive: true, force: true });
  log(`removed ${dataDir}`);
  if (incomplete) process.exit(1);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "reset" && args.length === 1) return reset();
  const separator = args.indexOf("--");
  if (args[0] !== "exec" || separator < 0 || separator === args.length - 1) {
    process.stderr.write(
      "usage: node --import tsx scripts/services.ts exec [--local-secrets] -- <command> [args...]\n" +
        "       node --import tsx scripts/services.ts reset\n",
    );
    process.exit(2);
  }
  const options = args.slice(1, separator);
  const unknown = options.filter((option) => option !== "--local-secrets");
  if (unknown.length > 0) {
    process.stderr.write(`services: unknown option ${unknown.join(" ")}\n`);
    process.exit(2);
  }
  const [command, ...commandArgs] = args.slice(separator + 1) as [string, ...string[]];
  await exec(options, command, commandArgs);
}

// Imported (the tests read isExpectedFerretDbLine), it runs nothing.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main().catch((error: unknown) => {
    log(error instanceof Error ? error.message : String(error));
    stopAllAndExit(1);
  });
}
