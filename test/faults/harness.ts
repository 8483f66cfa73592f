/**
 * What the fault checks share: a stack of their own (Redis and FerretDB on
 * spare ports, a third-party API), roomkey as a real child process running
 * the compiled build, clients, and a recorder of answers by phase.
 */
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import type { Config } from "../../src/config.js";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { type RoomkeyProcess, spawnRoomkey } from "../helpers/child-process.js";
import { type GrpcClient, grpcClient, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { type OwnService, ownFerretDb, ownRedis } from "../helpers/own-services.js";
import { testConfig } from "../helpers/server.js";

/** One printed line per check: its verdict and its figures. */
export interface Outcome {
  name: string;
  /** Correctness: the process stayed up, nothing was lost, no answer was wrong. A failure fails the suite. */
  ok: boolean;
  /**
   * A speed or memory target, where the check has one: printed, not failing
   * the suite, since a shared machine's noise is not a defect
   * (docs/reliability.md records the figures).
   */
  target?: boolean;
  figures: string;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` holds; the time it took, or undefined after `timeoutMs`. */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 50) {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await sleep(everyMs);
  }
  return undefined;
}

/** Redis and FerretDB (on PostgreSQL when the machine has it) of the suite's own, and a third-party API. */
export interface Stack {
  redis: OwnService;
  ferret: OwnService;
  provider: ApiKeyProvider;
  /** A configuration on this stack (its own prefixes and keys), with overrides. */
  config(overrides?: Record<string, string>): Config;
  stop(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const [redis, ferret, provider] = await Promise.all([
    ownRedis(),
    ownFerretDb({ backend: "postgresql" }),
    startApiKeyProvider(),
  ]);
  return {
    redis,
    ferret,
    provider,
    config(overrides = {}) {
      process.env.MONGODB_URL = ferret.url;
      process.env.REDIS_URL = redis.url;
      return testConfig({ ROOMKEY_LOG_LEVEL: "info", ...overrides });
    },
    async stop() {
      await Promise.all([redis.dispose(), ferret.dispose(), provider.stop()]);
    },
  };
}

/** roomkey as a child process, and clients of it. */
export interface Roomkey {
  config: Config;
  process: RoomkeyProcess;
  pid: number;
  grpcAddress: string;
  httpPort: number;
  adminKey: string;
  environments: GrpcClient<typeof EnvironmentService>;
  tokens: GrpcClient<typeof TokenService>;
  accounts: GrpcClient<typeof AccountService>;
  health: GrpcClient<typeof Health>;
  /** Resident memory from /proc, in MiB. */
  rssMiB(): number;
  /** Whether the process is still running. */
  alive(): boolean;
  /** Log lines at error level or above. */
  errors(): { msg?: string; [key: string]: unknown }[];
  close(): void;
}

export async function startRoomkey(config: Config, role = "all", nodeArgs: string[] = []): Promise<Roomkey> {
  const child = spawnRoomkey(config, role, { compiled: true, nodeArgs });
  // A worker serves no port: it is up once it says anything.
  const up = () => (role === "worker" ? child.lines.length > 0 : child.logged("listening"));
  const started = await until(() => up() || child.child.exitCode !== null, 60_000);
  if (started === undefined || child.child.exitCode !== null) {
    throw new Error(`roomkey (${role}) did not start: ${JSON.stringify(child.lines.slice(-5))}`);
  }
  const line = child.lines.find((l) => l.msg === "listening") ?? {};
  const grpcAddress = `127.0.0.1:${Number(line.grpcPort ?? 0)}`;
  const pid = child.child.pid ?? 0;
  const clients = {
    environments: grpcClient(EnvironmentService, grpcAddress),
    tokens: grpcClient(TokenService, grpcAddress),
    accounts: grpcClient(AccountService, grpcAddress),
    health: grpcClient(Health, grpcAddress),
  };
  return {
    config,
    process: child,
    pid,
    grpcAddress,
    httpPort: Number(line.httpPort ?? 0),
    adminKey: config.ROOMKEY_ADMIN_KEY,
    ...clients,
    rssMiB() {
      try {
        const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        return match ? Number(match[1]) / 1024 : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    alive: () => child.child.exitCode === null && child.child.signalCode === null,
    errors: () => child.lines.filter((l) => typeof l.level === "number" && l.level >= 50),
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}

/** SERVING or not, as the health service says (undefined: no answer). */
export async function serving(roomkey: Roomkey, deadlineMs = 1_000): Promise<boolean | undefined> {
  try {
    const answer = await roomkey.health.unary(Health.method.check, { service: "" }, metadataFor(undefined), {
      deadlineMs,
    });
    return answer.status === 1;
  } catch {
    return undefined;
  }
}

/** The status code a call ended with (0 for OK). */
export async function codeOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return status.OK;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "number" ? code : -1;
  }
}

/** Answers per phase: a histogram of codes and the latencies. */
export class Recorder {
  phase = "before";
  private readonly codes = new Map<string, Map<string, number>>();
  private readonly latencies = new Map<string, number[]>();

  record(code: number | string, ms: number, phase = this.phase): void {
    const name = typeof code === "number" ? (status[code] ?? String(code)) : code;
    let histogram = this.codes.get(phase);
    if (!histogram) {
      histogram = new Map();
      this.codes.set(phase, histogram);
    }
    histogram.set(name, (histogram.get(name) ?? 0) + 1);
    let list = this.latencies.get(phase);
    if (!list) {
      list = [];
      this.latencies.set(phase, list);
    }
    list.push(ms);
  }

  /** Times a call and records how it ended. */
  async time<T>(call: () => Promise<T>, phase = this.phase): Promise<number> {
    const started = performance.now();
    const code = await codeOf(call());
    this.record(code, performance.now() - started, phase);
    return code;
  }

  histogram(phase: string): Record<string, number> {
    return Object.fromEntries([...(this.codes.get(phase) ?? new Map()).entries()].sort());
  }

  count(phase: string, code: string): number {
    return this.codes.get(phase)?.get(code) ?? 0;
  }

  total(code: string): number {
    return [...this.codes.values()].reduce((sum, h) => sum + (h.get(code) ?? 0), 0);
  }

  percentile(phase: string, q: number): number {
    const list = [...(this.latencies.get(phase) ?? [])].sort((a, b) => a - b);
    return list[Math.min(list.length - 1, Math.floor(q * list.length))] ?? Number.NaN;
  }
}

/** Keeps `lanes` calls of `op` going until `stop()` says so. */
export function load(lanes: number, op: (lane: number, i: number) => Promise<unknown>) {
  let running = true;
  let calls = 0;
  const done = Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = 0; running; i++) {
        calls++;
        const code = await op(lane, i).catch(() => -1);
        // A client backs off a little after an error, as real ones do, rather than spinning on it.
        if (typeof code === "number" && code !== 0) await sleep(20);
      }
    }),
  );
  return {
    calls: () => calls,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The admin key's metadata for `environment`. */
export function admin(roomkey: Roomkey, environment: string) {
  return metadataFor(environment, roomkey.adminKey);
}

/** An environment with the stack's API-key integration `keyed`; resolves once the workers serve it. */
export async function keyedEnvironment(roomkey: Roomkey, stack: Stack, name: string): Promise<void> {
  await roomkey.environments.unary(EnvironmentService.method.createEnvironment, {}, admin(roomkey, name));
  await roomkey.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: apiKeyIntegration("keyed", stack.provider.url) },
    admin(roomkey, name),
  );
}

export function fmt(ms: number | undefined): string {
  return ms === undefined || Number.isNaN(ms) ? "n/a" : `${Math.round(ms)} ms`;
}
