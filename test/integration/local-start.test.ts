import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isExpectedFerretDbLine } from "../../scripts/services.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { grpcClient, metadataFor } from "../helpers/clients.js";
import { freePort } from "../helpers/own-services.js";
import { backendUrls } from "../helpers/server.js";

const root = resolve(import.meta.dirname, "../..");
const execFileAsync = promisify(execFile);
const linux = process.platform === "linux";
const hasSetpriv = linux && spawnSync("setpriv", ["--version"]).status === 0;
const hasPsql = spawnSync("psql", ["--version"]).status === 0;

/**
 * The environment scripts/start and scripts/reset see: the local defaults,
 * except a data directory and ports of the test's own (no clash with the test
 * run's FerretDB on 27017 and Redis on 6379, nor with other tests), and none of
 * the settings the test command itself was given.
 */
interface Local {
  dataDir: string;
  ports: { grpc: number; http: number; mongo: number; redis: number };
  env: NodeJS.ProcessEnv;
}

async function localSetup(): Promise<Local> {
  const dataDir = mkdtempSync(join(tmpdir(), "roomkey-local-start-"));
  const ports = { grpc: await freePort(), http: await freePort(), mongo: await freePort(), redis: await freePort() };
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name === "MONGODB_URL" || name === "REDIS_URL" || name.startsWith("ROOMKEY_")) delete env[name];
  }
  Object.assign(env, {
    ROOMKEY_LOCAL_DATA_DIR: dataDir,
    ROOMKEY_LOCAL_MONGO_PORT: String(ports.mongo),
    ROOMKEY_LOCAL_REDIS_PORT: String(ports.redis),
    ROOMKEY_HOST: "127.0.0.1",
    ROOMKEY_GRPC_PORT: String(ports.grpc),
    ROOMKEY_HTTP_PORT: String(ports.http),
    ROOMKEY_METRICS_PORT: "off",
    ROOMKEY_SHUTDOWN_TIMEOUT_MS: "5000",
  });
  return { dataDir, ports, env };
}

/** A process's parent and state from /proc/<pid>/stat, or undefined once it is gone (zombies count as gone). */
function procStat(pid: number): { ppid: number; state: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (state === undefined || state === "Z" || state === "X") return undefined;
  return { ppid: Number(ppid), state };
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/** `pid` and every process below it, with their command lines. */
function processTree(pid: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const p of allPids()) {
    const stat = procStat(p);
    if (stat) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), p]);
  }
  const tree = new Map<number, string>();
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    tree.set(next, commandLine(next));
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** Live processes (not zombies) whose command line mentions `text`. */
function processesMentioning(text: string): string[] {
  return allPids()
    .filter((pid) => pid !== process.pid && procStat(pid) !== undefined && commandLine(pid).includes(text))
    .map((pid) => `${pid}: ${commandLine(pid)}`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Started {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** roomkey's JSON log lines. */
  logLines(): { level?: number; msg?: string }[];
}

/** Every scripts/start a test ran, so that one a failed test left running is stopped all the same. */
const runs: Started[] = [];

async function stopRunsLeft(): Promise<void> {
  for (const run of runs) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) continue;
    run.child.kill("SIGTERM");
    await Promise.race([run.exited, new Promise((r) => setTimeout(r, 20_000))]);
  }
}

/** scripts/start, for real, until health says SERVING. */
async function startLocal(local: Local): Promise<Started> {
  const child = spawn(join(root, "scripts", "start"), [], {
    cwd: root,
    env: local.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once("exit", (code, signal) => done({ code, signal })),
  );
  const started: Started = {
    child,
    exited,
    output: () => `--- stdout\n${stdout}\n--- stderr\n${stderr}`,
    logLines: () =>
      stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line)),
  };
  runs.push(started);
  const health = grpcClient(Health, `127.0.0.1:${local.ports.grpc}`);
  try {
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`scripts/start exited early\n${started.output()}`);
        try {
          const answer = await health.unary(Health.method.check, {}, metadataFor(undefined), { deadlineMs: 500 });
          return answer.status === Serving.SERVING;
        } catch {
          return false;
        }
      },
      90_000,
      "roomkey SERVING",
    );
  } finally {
    health.close();
  }
  return started;
}

/** Checks that scripts/start's tree holds roomkey, FerretDB and redis-server (all started here), and returns it. */
function localTree(started: Started, local: Local): Map<number, string> {
  const pid = started.child.pid ?? 0;
  const tree = processTree(pid);
  const commands = [...tree.values()];
  expect(commands.some((c) => c.includes("scripts/services.ts exec --local-secrets"))).toBe(true);
  expect(commands.some((c) => c.includes("dist/src/main.js"))).toBe(true);
  expect(commands.some((c) => c.includes(`--state-dir=${join(local.dataDir, "ferretdb")}`))).toBe(true);
  expect(commands.some((c) => c.includes(`redis-server 127.0.0.1:${local.ports.redis}`))).toBe(true);
  return tree;
}

function alive(tree: Map<number, string>): string[] {
  return [...tree].filter(([pid]) => procStat(pid) !== undefined).map(([pid, command]) => `${pid}: ${command}`);
}

async function busyPorts(local: Local): Promise<number[]> {
  const busy: number[] = [];
  for (const port of Object.values(local.ports)) if (!(await portIsFree(port))) busy.push(port);
  return busy;
}

describe.skipIf(!linux)("scripts/start, stopped by a signal", () => {
  let local: Local;

  beforeAll(async () => {
    local = await localSetup();
  });

  afterAll(async () => {
    await stopRunsLeft();
    // Also when a test failed half-way: this checkout's PostgreSQL database and data directory go.
    await execFileAsync(join(root, "scripts", "reset"), [], { cwd: root, env: local.env }).catch(() => undefined);
    rmSync(local.dataDir, { recursive: true, force: true });
  });

  it("when it gets SIGTERM, then roomkey, FerretDB and redis-server are gone when it exits, and their ports are free", {
    timeout: 120_000,
  }, async () => {
    const started = await startLocal(local);
    const tree = localTree(started, local);

    // The checkout's state: its id names the databases, its admin key opens them.
    const id = readFileSync(join(local.dataDir, "checkout-id"), "utf8").trim();
    expect(id).toMatch(/^rk[a-z0-9]{8}$/);
    const adminKey = readFileSync(join(local.dataDir, "admin-key"), "utf8").trim();
    const environments = grpcClient(EnvironmentService, `127.0.0.1:${local.ports.grpc}`);
    try {
      const answer = await environments.unary(
        EnvironmentService.method.getEnvironment,
        {},
        metadataFor("development", adminKey),
      );
      expect(answer.environment?.name).toBe("development");
    } finally {
      environments.close();
    }
    const mongo = new MongoClient(`mongodb://127.0.0.1:${local.ports.mongo}/`);
    try {
      const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
      const names = databases.map((d) => d.name);
      expect(names).toContain(`${id}_control`);
      expect(names).not.toContain("roomkey_control");
    } finally {
      await mongo.close();
    }

    // scripts/reset refuses while the checkout's services run, and wipes nothing.
    const refused = await execFileAsync(join(root, "scripts", "reset"), [], { cwd: root, env: local.env }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toMatch(/still run/);
    expect(existsSync(join(local.dataDir, "checkout-id"))).toBe(true);

    started.child.kill("SIGTERM");
    const { code } = await started.exited;
    expect(code, started.output()).toBe(0);
    expect(alive(tree)).toEqual([]);
    expect(processesMentioning(local.dataDir)).toEqual([]);
    expect(await busyPorts(local)).toEqual([]);
    // A healthy start and stop says nothing at warn (40) or above.
    const loud = started.logLines().filter((line) => (line.level ?? 0) >= 40);
    expect(loud, started.output()).toEqual([]);
  });

  it("when it gets SIGINT, then roomkey, FerretDB and redis-server are gone when it exits, and their ports are free", {
    timeout: 120_000,
  }, async () => {
    const started = await startLocal(local);
    const tree = localTree(started, local);

    started.child.kill("SIGINT");
    const { code } = await started.exited;
    expect(code, started.output()).toBe(0);
    expect(alive(tree)).toEqual([]);
    expect(processesMentioning(local.dataDir)).toEqual([]);
    expect(await busyPorts(local)).toEqual([]);
  });

  it.skipIf(!hasSetpriv)(
    "when it is killed with SIGKILL, then what it started gets SIGTERM from the kernel (pdeathsig) and stops",
    { timeout: 120_000 },
    async () => {
      const started = await startLocal(local);
      const tree = localTree(started, local);

      started.child.kill("SIGKILL");
      const { signal } = await started.exited;
      expect(signal).toBe("SIGKILL");
      // roomkey shuts down within ROOMKEY_SHUTDOWN_TIMEOUT_MS (5 s) and two seconds more.
      await until(() => alive(tree).length === 0, 15_000, `left running: ${alive(tree).join("; ")}`);
      expect(processesMentioning(local.dataDir)).toEqual([]);
      expect(await busyPorts(local)).toEqual([]);
    },
  );

  it("when scripts/reset runs after them, then the data directory and the checkout's PostgreSQL database are gone", {
    timeout: 60_000,
  }, async () => {
    const id = readFileSync(join(local.dataDir, "checkout-id"), "utf8").trim();
    const postgresDatabases = () =>
      spawnSync(
        "psql",
        ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", "SELECT datname FROM pg_database"],
        {
          encoding: "utf8",
        },
      ).stdout.split("\n");
    const usedPostgres = hasPsql && postgresDatabases().includes(`roomkey_ferretdb_${id}`);

    await execFileAsync(join(root, "scripts", "reset"), [], { cwd: root, env: local.env });

    expect(existsSync(local.dataDir)).toBe(false);
    if (usedPostgres) expect(postgresDatabases()).not.toContain(`roomkey_ferretdb_${id}`);
  });
});

describe("scripts/reset on a MongoDB and a Redis shared with others", () => {
  const ours = "rkreset001";
  const theirs = "rkother001";
  let local: Local;
  let mongo: MongoClient;
  let redis: Redis;

  beforeAll(async () => {
    local = await localSetup();
    const { mongodbUrl, redisUrl } = backendUrls();
    Object.assign(local.env, { MONGODB_URL: mongodbUrl, REDIS_URL: redisUrl });
    mongo = new MongoClient(mongodbUrl);
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    for (const name of [`${theirs}_control`, `${ours}_control`, `${ours}_env_development`]) {
      await mongo.db(name).dropDatabase();
    }
    await redis.del(`${theirs}:q:handshake:id`, `${ours}:q:handshake:id`, `${ours}:events`);
    await mongo.close();
    redis.disconnect();
    rmSync(local.dataDir, { recursive: true, force: true });
  });

  it("when a prefix is set in the shell, then reset refuses and wipes nothing: that data may be shared or another deployment's", async () => {
    mkdirSync(local.dataDir, { recursive: true });
    writeFileSync(join(local.dataDir, "checkout-id"), `${ours}\n`);
    await mongo.db(`${theirs}_control`).collection("c").insertOne({ seeded: true });
    const refused = await execFileAsync(join(root, "scripts", "reset"), [], {
      cwd: root,
      env: { ...local.env, ROOMKEY_DB_PREFIX: theirs },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`ROOMKEY_DB_PREFIX=${theirs} is set`);
    const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
    expect(databases.map((d) => d.name)).toContain(`${theirs}_control`);
    expect(existsSync(join(local.dataDir, "checkout-id"))).toBe(true);
  });

  it("when a checkout is reset, then its databases, its Redis keys and its data directory go, and another checkout's stay", async () => {
    mkdirSync(local.dataDir, { recursive: true });
    writeFileSync(join(local.dataDir, "checkout-id"), `${ours}\n`);
    writeFileSync(join(local.dataDir, "master-key"), "kept only until the reset\n");
    for (const name of [`${ours}_control`, `${ours}_env_development`, `${theirs}_control`]) {
      await mongo.db(name).collection("c").insertOne({ seeded: true });
    }
    await redis.set(`${ours}:q:handshake:id`, "1");
    await redis.set(`${ours}:events`, "1");
    await redis.set(`${theirs}:q:handshake:id`, "1");

    await execFileAsync(join(root, "scripts", "reset"), [], { cwd: root, env: local.env });

    const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
    const names = databases.map((d) => d.name);
    expect(names).not.toContain(`${ours}_control`);
    expect(names).not.toContain(`${ours}_env_development`);
    expect(names).toContain(`${theirs}_control`);
    expect(await redis.exists(`${ours}:q:handshake:id`, `${ours}:events`)).toBe(0);
    expect(await redis.exists(`${theirs}:q:handshake:id`)).toBe(1);
    expect(existsSync(local.dataDir)).toBe(false);
  });
});

describe("scripts/reset of a checkout whose FerretDB holds another checkout's databases", () => {
  // A second checkout started while this one's FerretDB answered on 27017 keeps its databases in this one's store.
  const ours = "rkreset002";
  const theirs = "rkother002";
  const postgres = `roomkey_ferretdb_${ours}`;
  const sql = (statement: string, database = "postgres") =>
    spawnSync(
      "psql",
      ["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", statement],
      {
        encoding: "utf8",
      },
    );
  let local: Local;

  beforeAll(async () => {
    local = await localSetup();
  });

  afterAll(() => {
    if (hasPsql) sql(`DROP DATABASE IF EXISTS "${postgres}"`);
    rmSync(local.dataDir, { recursive: true, force: true });
  });

  async function reset(): Promise<{ code: number; stderr: string }> {
    return execFileAsync(join(root, "scripts", "reset"), [], { cwd: root, env: local.env }).then(
      ({ stderr }) => ({ code: 0, stderr }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code ?? -1, stderr: error.stderr ?? "" }),
    );
  }

  it("when it is on SQLite, then reset refuses, naming them, and wipes nothing until they are gone", async () => {
    const sqlite = join(local.dataDir, "ferretdb", "sqlite");
    mkdirSync(sqlite, { recursive: true });
    writeFileSync(join(local.dataDir, "checkout-id"), `${ours}\n`);
    writeFileSync(join(sqlite, `${ours}_control.sqlite`), "");
    writeFileSync(join(sqlite, `${theirs}_control.sqlite`), "");

    const refused = await reset();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${theirs}_control`);
    expect(refused.stderr).not.toContain(`${ours}_control`);
    expect(existsSync(join(sqlite, `${theirs}_control.sqlite`))).toBe(true);

    rmSync(join(sqlite, `${theirs}_control.sqlite`));
    expect((await reset()).code).toBe(0);
    expect(existsSync(local.dataDir)).toBe(false);
  });

  it.skipIf(!hasPsql)(
    "when it is on PostgreSQL, then reset refuses, naming them, and drops the database once they are gone",
    async () => {
      mkdirSync(local.dataDir, { recursive: true });
      writeFileSync(join(local.dataDir, "checkout-id"), `${ours}\n`);
      expect(sql(`CREATE DATABASE "${postgres}"`).status).toBe(0);
      expect(sql(`CREATE SCHEMA ${ours}_control; CREATE SCHEMA ${theirs}_control`, postgres).status).toBe(0);

      const refused = await reset();
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`${theirs}_control`);
      expect(sql(`SELECT 1 FROM pg_database WHERE datname = '${postgres}'`).stdout.trim()).toBe("1");

      expect(sql(`DROP SCHEMA ${theirs}_control`, postgres).status).toBe(0);
      expect((await reset()).code).toBe(0);
      expect(sql(`SELECT 1 FROM pg_database WHERE datname = '${postgres}'`).stdout.trim()).toBe("");
      expect(existsSync(local.dataDir)).toBe(false);
    },
  );
});

describe("FerretDB's log, as scripts/services.ts passes it on", () => {
  // Lines as FerretDB 1.24.2 on PostgreSQL writes them (console format, tab-separated).
  const duplicateKey =
    '2026-12-01T16:17:14.610Z\tERROR\tpostgresql/collection.go:157\tQuery\t{"args":{"0":"{}"},"err":{"Severity":"ERROR",' +
    '"Code":"23505","Message":"duplicate key value violates unique constraint \\"y_fc0c4ef4_k___b473697a_idx\\""},' +
    '"name":"postgresql","sql":"INSERT INTO \\"x\\".\\"y_fc0c4ef4\\" (_jsonb) VALUES ($1)"}';

  it("when a query failed on a duplicate key (SQLSTATE 23505), then its line is dropped", () => {
    expect(isExpectedFerretDbLine(duplicateKey)).toBe(true);
  });

  it("when a query failed otherwise, or FerretDB says anything else, then the line passes", () => {
    expect(isExpectedFerretDbLine(duplicateKey.replace('"23505"', '"53100"'))).toBe(false);
    expect(isExpectedFerretDbLine(duplicateKey.replace("\tERROR\t", "\tWARN\t"))).toBe(false);
    expect(isExpectedFerretDbLine("2026-12-01T16:17:14.610Z\tERROR\tclientconn/listener.go:96\tListener stopped")).toBe(
      false,
    );
    expect(isExpectedFerretDbLine("panic: runtime error")).toBe(false);
  });
});
