import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { settlesWithin } from "../async.js";
import type { Config } from "../config.js";
import { systemClock } from "../domain/clock.js";
import { type MetricsServer, startMetricsServer } from "../metrics/metrics-server.js";
import { type Api, startApi } from "./api.js";
import { openClients } from "./clients.js";
import { followEnvironments } from "./follow-environments.js";
import { composeServices, type RoomkeySeams } from "./services.js";
import { startWorkers, type Workers } from "./worker.js";

export type { RoomkeySeams };

/** `all`: API and workers in one process (local runs); production runs `api` and `worker` apart. */
export type Role = "all" | "api" | "worker";

export interface Roomkey {
  grpcPort: number;
  httpPort: number;
  /** The Prometheus metrics port; 0 when ROOMKEY_METRICS_PORT is off. */
  metricsPort: number;
  /** Resolves once the default environments exist and the workers ran their first pass. */
  ready: Promise<void>;
  /** Environments this process's workers serve now: its share of the fleet's (empty for the `api` role). */
  servedEnvironments(): string[];
  /** Queues with a running BullMQ worker in this process now: the others' environments are idle. */
  liveQueues(): string[];
  /** Runs one of an environment's sweeps now in this process (`sweep-tokens`, `sweep-accounts`, ...): workers only. */
  runSweep(environment: string, name: string): Promise<unknown>;
  /** Graceful, bounded shutdown; resolves true if everything closed in time. */
  shutdown(): Promise<boolean>;
}

/**
 * The composition root, in stages: clients (./clients.ts) -> repositories and
 * services (./services.ts) -> the API (./api.ts) and the workers
 * (./worker.ts), as the role asks; then a bounded shutdown in reverse.
 */
export async function startRoomkey(
  config: Config,
  role: Role,
  logger: Logger,
  seams: RoomkeySeams = {},
): Promise<Roomkey> {
  const clock = systemClock;
  const stopping = new AbortController();
  // Every call in flight listens for shutdown: many listeners are expected, not a leak.
  setMaxListeners(0, stopping.signal);
  /** Run in order at shutdown, after the servers stopped taking calls. */
  const cleanups: (() => unknown)[] = [];

  const clients = openClients(config, role, logger, clock, stopping.signal);
  cleanups.push(() => clients.mongoGate.stop());
  const services = composeServices(config, clients, logger, clock, seams);
  seams.inspect?.({ clients, services });
  cleanups.push(
    () => services.producers.stop(),
    followEnvironments(services.bus, services.directory, config.ROOMKEY_ENVIRONMENT_REFRESH_MS, logger),
  );

  const stage = { config, clients, services, logger, clock, stopping: stopping.signal, cleanups };
  let api: Api | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    if (config.ROOMKEY_METRICS_PORT !== "off") {
      const options = { host: config.ROOMKEY_HOST, port: config.ROOMKEY_METRICS_PORT, logger };
      metricsServer = await startMetricsServer(services.metrics, options);
    }
    if (role !== "worker") api = await startApi(stage);
  } catch (error) {
    // A port in use, say: release what was opened so the process can exit.
    stopping.abort();
    await metricsServer?.close();
    for (const cleanup of cleanups) await cleanup();
    await clients.close();
    throw error;
  }
  const workers: Workers | undefined = role !== "api" ? startWorkers(stage) : undefined;

  async function shutdown(): Promise<boolean> {
    const started = Date.now();
    const left = () => Math.max(100, config.ROOMKEY_SHUTDOWN_TIMEOUT_MS - (Date.now() - started));
    stopping.abort();
    const drained = api ? await api.close(left()) : true;
    await metricsServer?.close();
    for (const cleanup of cleanups) await cleanup();
    const workersClosed = workers ? await workers.close(left()) : true;
    // After the workers: their provider calls in flight keep their connections.
    services.outbound.close();
    services.webhookOutbound.close();
    await settlesWithin(services.queues.close(), left());
    await settlesWithin(clients.close(), left());
    logger.info({ drained, workersClosed, ms: Date.now() - started }, "shut down");
    return drained && workersClosed;
  }

  let shuttingDown: Promise<boolean> | undefined;
  return {
    grpcPort: api?.grpcPort ?? 0,
    httpPort: api?.httpPort ?? 0,
    metricsPort: metricsServer?.port ?? 0,
    ready: Promise.all([api?.ready, workers?.ready]).then(() => undefined),
    servedEnvironments: () => workers?.served() ?? [],
    liveQueues: () => workers?.liveQueues() ?? [],
    runSweep: (environment, name) => {
      if (!workers) throw new Error("this process runs no workers");
      return workers.runSweep(environment, name);
    },
    shutdown: () => {
      shuttingDown ??= shutdown();
      return shuttingDown;
    },
  };
}
