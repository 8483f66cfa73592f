import { setMaxListeners } from "node:events";
import { realpathSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createValidator } from "@bufbuild/protovalidate";
import { HealthImplementation } from "grpc-health-check";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { handshakeProcessors, retryAfterOf } from "../workers/handshake.worker.js";
import { createOrphanSweeper } from "../workers/orphan-sweeper.js";
import { rotationProcessors, tokenSweepEveryMs } from "../workers/rotation.worker.js";
import { createSchedulerReconciler } from "../workers/scheduler-reconciler.js";
import { createWorkerSupervisor } from "../workers/supervisor.js";
import { createWorkerFactory } from "../workers/worker-factory.js";
import { settlesWithin, sleep } from "./async.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import {
  accountIdempotencyWindowMs,
  createAccountService,
  type RefreshQueue,
} from "./domain/accounts/account-service.js";
import { createConnectingSweep, createHandshakes } from "./domain/accounts/handshake.js";
import { createRefresher, createRefreshSweep } from "./domain/accounts/refresher.js";
import { systemClock } from "./domain/clock.js";
import { createKeyring, derivePurposeKey } from "./domain/crypto/envelope.js";
import { createEnvironmentDirectory } from "./domain/environments/environment-directory.js";
import { isEnvironmentName } from "./domain/environments/environment-name.js";
import { createEnvironmentService } from "./domain/environments/environment-service.js";
import { effectiveSettings, incarnationOf, isEnvironmentEvent } from "./domain/environments/environments.js";
import { createIntegrationService } from "./domain/integrations/integration-service.js";
import { createPageTokens } from "./domain/paging.js";
import { createTokenMaintenance } from "./domain/tokens/token-maintenance.js";
import { createTokenService } from "./domain/tokens/token-service.js";
import { createTokenVerifier } from "./domain/tokens/token-verifier.js";
import { createUsageRecorder } from "./domain/tokens/usage-recorder.js";
import { createAccountWatch } from "./events/account-watch.js";
import { createEventBus } from "./events/event-bus.js";
import { AccountService } from "./gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "./gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "./gen/roomkey/v1/token_service_pb.js";
import { createHealthMonitor } from "./health/health-monitor.js";
import { createLogger } from "./logger.js";
import { createHttpCredentialChecker } from "./providers/http-credential-checker.js";
import { createHttpOAuthClient } from "./providers/http-oauth-client.js";
import { createOutboundHttp, type HostResolver } from "./providers/outbound-http.js";
import { createJobProducer } from "./queue/job-producer.js";
import { createJobSchedulers, type JobSchedule } from "./queue/job-schedulers.js";
import { createMissedHandshakes } from "./queue/missed-handshakes.js";
import { handshakeJobId, refreshJobId } from "./queue/queue-names.js";
import { createQueueRegistry } from "./queue/queue-registry.js";
import {
  handshakeJobOptions,
  maxProviderRetryAfterMs,
  providerBackoffMs,
  refreshJobOptions,
  retireTokenJobOptions,
  sweepRequestJobOptions,
} from "./queue/retry-policy.js";
import { createAuthenticator, createEdge } from "./rpc/edge.js";
import { createFailureThrottle } from "./rpc/failure-throttle.js";
import { createAccountHandlers } from "./rpc/handlers/account-handlers.js";
import { createEnvironmentHandlers } from "./rpc/handlers/environment-handlers.js";
import { createTokenHandlers } from "./rpc/handlers/token-handlers.js";
import { bindService, startTransports } from "./rpc/servers.js";
import { createTokenAuthenticator } from "./rpc/token-authenticator.js";
import {
  accountKeysCollection,
  accountsCollection,
  createAccountCounter,
  createAccountRepository,
  oauthStatesCollection,
} from "./storage/account-repository.js";
import { createAvailabilityGate } from "./storage/availability-gate.js";
import { createEnvironmentDatabases } from "./storage/environment-databases.js";
import {
  createEnvironmentRepository,
  deploymentCollection,
  environmentsCollection,
} from "./storage/environment-repository.js";
import { createIntegrationRepository, integrationsCollection } from "./storage/integration-repository.js";
import {
  connectWithRetry,
  createMongoClient,
  databaseNames,
  driverSeesNoServer,
  ensureCollections,
  isMongoUnreachable,
  mongoPing,
} from "./storage/mongo.js";
import {
  createTokenRepository,
  idempotencyCollection,
  tokensCollection,
  tokenUsageCollection,
} from "./storage/token-repository.js";
import { claimRetentionMs, purgeTransitions, transitionsCollection } from "./storage/versioned.js";

/** `all`: API and workers in one process (local runs); production runs `api` and `worker` apart. */
export type Role = "all" | "api" | "worker";

export interface Roomkey {
  grpcPort: number;
  httpPort: number;
  /** Resolves once the default environments exist and the workers ran their first pass. */
  ready: Promise<void>;
  /** Environments the workers serve now (empty for the `api` role). */
  servedEnvironments(): string[];
  /** Graceful, bounded shutdown; resolves true if everything closed in time. */
  shutdown(): Promise<boolean>;
}

const environmentsChannel = "environments";
const tokensChannel = "tokens";

/** A `deleting` record untouched for this long was abandoned mid-way; the workers finish it. */
const abandonedDeleteMs = 60_000;

/** What tests replace of the outside world. */
export interface RoomkeySeams {
  /** DNS for provider calls (the outbound guard); the system's by default. */
  resolveHost?: HostResolver;
}

/**
 * The composition root: config -> clients -> repositories -> services ->
 * transports and workers. The only place where things are wired together.
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

  // Clients: one MongoClient and a few Redis connections per process.
  const mongo = createMongoClient(config.MONGODB_URL, `roomkey-${role}`);
  // Commands fail fast while Redis is down (the API answers UNAVAILABLE); workers wait instead.
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  const workerRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null, lazyConnect: true });
  const subscriber = new Redis(config.REDIS_URL, { lazyConnect: true });
  const connections = { redis, workerRedis, subscriber };
  for (const [name, connection] of Object.entries(connections)) {
    connection.on("error", (error) => logger.debug({ err: error, connection: name }, "redis connection error"));
    connection.connect().catch((error: unknown) => logger.warn({ err: error, connection: name }, "redis unreachable"));
  }

  let mongoConnected = false;
  // "MongoDB known down": while pings say it cannot be reached, repository calls fail at once with UNAVAILABLE.
  // The driver's monitor notices a dead server first: the gate pings at once then.
  const noServer = driverSeesNoServer(mongo, (gone) => {
    if (gone) mongoGate.probe().catch(() => undefined);
  });
  const mongoGate = createAvailabilityGate({
    backend: "MongoDB",
    ping: mongoPing(mongo, () => mongoConnected),
    isUnreachable: isMongoUnreachable,
    unreachableNow: noServer,
    pingTimeoutMs: 1_000,
    recheckMs: 1_000,
    clock,
    logger,
  });
  cleanups.push(() => mongoGate.stop());
  const mongoReady = connectWithRetry(mongo, stopping.signal, (error, attempt) =>
    logger.warn({ err: error, attempt }, "MongoDB unreachable; retrying"),
  ).then(async (connected) => {
    mongoConnected = connected;
    // Pings before the connection closed the gate: open it now, not at the next ping.
    if (connected) await mongoGate.probe().catch(() => undefined);
  });

  // Repositories, each behind the gate.
  const { guard } = mongoGate;
  const names = databaseNames(config.ROOMKEY_DB_PREFIX);
  const control = mongo.db(names.control);
  const environments = guard(createEnvironmentRepository(control));
  const environmentDatabases = createEnvironmentDatabases(mongo, names, [
    integrationsCollection,
    accountsCollection,
    accountKeysCollection,
    oauthStatesCollection,
    tokensCollection,
    idempotencyCollection,
    tokenUsageCollection,
    transitionsCollection,
  ]);
  const databases = guard({
    provision: (name: string) => environmentDatabases.provision(name),
    drop: (name: string) => environmentDatabases.drop(name),
    listWithDatabase: () => environmentDatabases.listWithDatabase(),
  });
  const tokenRepository = guard(createTokenRepository(environmentDatabases));
  const accounts = guard(createAccountCounter(environmentDatabases));
  const accountRepository = guard(createAccountRepository(environmentDatabases, environments));
  const integrationRepository = guard(createIntegrationRepository(environmentDatabases));
  const queues = createQueueRegistry({ connection: redis, prefix: config.ROOMKEY_QUEUE_PREFIX, logger });
  const bus = createEventBus({ publisher: redis, subscriber, prefix: config.ROOMKEY_QUEUE_PREFIX, logger });

  // Services.
  const masterKey = Buffer.from(config.ROOMKEY_MASTER_KEY, "base64");
  const keyring = createKeyring(masterKey);
  // Tokens cached for an environment go with it (`verifier` is made below; called only later).
  const directory = createEnvironmentDirectory({
    source: environments,
    keyring,
    clock,
    listTrustMs: 2 * config.ROOMKEY_ENVIRONMENT_REFRESH_MS,
    onGone: (name) => verifier.invalidateEnvironment(name),
  });

  const environmentService = createEnvironmentService({
    store: environments,
    resources: {
      assertQueuesReachable: () => queues.assertReachable(),
      provision: (name) => databases.provision(name),
      dropDatabase: (name) => databases.drop(name),
      removeQueues: (name) => queues.removeEnvironment(name),
    },
    accounts,
    keyring,
    events: {
      async publish(event) {
        // This replica first, then the others.
        await directory.apply(event).catch((error: unknown) => logger.warn({ err: error }, "directory update failed"));
        await bus.publish(environmentsChannel, event);
      },
    },
    clock,
  });

  // Tokens: verification from an in-process cache, invalidated on every replica through pub/sub.
  const environmentExists = async (name: string) => (await directory.find(name)) !== undefined;
  const usage = createUsageRecorder({ writer: tokenRepository, environmentExists, logger });
  const verifier = createTokenVerifier({
    lookup: tokenRepository,
    knownHashes: tokenRepository,
    environmentExists,
    environmentKnown: (name) => directory.has(name),
    usage,
    clock,
    ttlMs: config.ROOMKEY_TOKEN_CACHE_TTL_MS,
    negativeTtlMs: 5_000,
    maxEntries: 100_000,
  });
  const invalidations = {
    async publish(environment: string, hash: string) {
      verifier.invalidate(hash, environment);
      return bus.publish(tokensChannel, { environment, hash });
    },
  };
  const jobs = createJobProducer(queues);
  /** The incarnation a job is bound to: the caller's (a job queueing more work), else the one this process knows. */
  const incarnationFor = async (environment: string, given?: string) =>
    given ?? incarnationOf(await directory.require(environment));
  const tokenService = createTokenService({
    store: tokenRepository,
    invalidations,
    retirements: {
      async retireAt(environment, tokenId, at) {
        // BullMQ would wait for a Redis that is down: fail at once instead (the sweep retires it).
        queues.assertReachable();
        await jobs.add(
          environment,
          "rotation",
          "retire-token",
          { tokenId, incarnation: await incarnationFor(environment) },
          {
            ...retireTokenJobOptions,
            delay: Math.max(0, at.getTime() - clock.now().getTime()),
            jobId: `retire-${tokenId}`,
          },
        );
      },
    },
    defaultLifetimeMs: async (name) => (await directory.require(name)).settings.defaultTokenLifetimeMs,
    cacheTtlMs: config.ROOMKEY_TOKEN_CACHE_TTL_MS,
    clock,
    warn: (message, details) => logger.warn(details, message),
  });
  // Every request to a URL an integration names goes through this guard.
  const outbound = createOutboundHttp({
    allow: config.ROOMKEY_OUTBOUND_ALLOW,
    timeoutMs: config.ROOMKEY_PROVIDER_TIMEOUT_MS,
    ...(seams.resolveHost ? { resolve: seams.resolveHost } : {}),
  });
  const integrationService = createIntegrationService({
    store: integrationRepository,
    accounts,
    keys: { dataKey: (name) => directory.dataKey(name) },
    destinations: outbound,
    clock,
  });

  // Accounts: handshakes on the environment's queue, status changes over pub/sub.
  const accountWatch = createAccountWatch({ bus, maxBacklog: 1_000 });
  /** A one-off connecting sweep without grace, once Redis is back after losing or refusing handshakes. */
  async function requestConnectingSweep(environment: string): Promise<void> {
    queues.assertReachable();
    await jobs.add(environment, "handshake", "sweep-connecting", { noGrace: true }, sweepRequestJobOptions);
  }
  const missedHandshakes = createMissedHandshakes({ requestSweep: requestConnectingSweep, logger });
  const flushMissed = () => missedHandshakes.flush();
  redis.on("ready", flushMissed);
  cleanups.push(() => redis.off("ready", flushMissed));
  const handshakeQueue = {
    async enqueue(environment: string, accountId: string, attempt: number, incarnation?: string) {
      try {
        // BullMQ would wait for a Redis that is down: fail at once instead (the connecting sweep queues it).
        queues.assertReachable();
        await jobs.add(
          environment,
          "handshake",
          "connect",
          { accountId, attempt, incarnation: await incarnationFor(environment, incarnation) },
          { ...handshakeJobOptions, jobId: handshakeJobId(accountId, attempt) },
        );
      } catch (error) {
        missedHandshakes.missed(environment);
        throw error;
      }
      // Redis takes jobs again, also when it never said "ready" in between (a command that failed on its own).
      if (missedHandshakes.pending()) flushMissed();
    },
  };
  const refreshQueue: RefreshQueue = {
    async request(environment, requests, given) {
      queues.assertReachable();
      const incarnation = await incarnationFor(environment, given);
      // Removed when done, so that the job id only holds back refreshes while one is queued or running.
      await jobs.addBulk(
        environment,
        "rotation",
        "refresh-account",
        requests.map(({ accountId, seenVersion }) => ({
          data: { accountId, seenVersion, incarnation },
          options: { ...refreshJobOptions, jobId: refreshJobId(accountId) },
        })),
      );
    },
  };
  const accountSettings = async (name: string) => {
    const settings = effectiveSettings((await directory.require(name)).settings);
    return {
      refreshMarginMs: settings.oauthRefreshMarginMs,
      refreshTokenKeepaliveMs: settings.refreshTokenKeepaliveMs,
    };
  };
  const providerOptions = { send: outbound.send, maxRetryAfterMs: maxProviderRetryAfterMs };
  const oauthClient = createHttpOAuthClient(providerOptions);
  const accountService = createAccountService({
    store: accountRepository,
    integrations: integrationRepository,
    keys: directory,
    events: accountWatch.events,
    handshakes: handshakeQueue,
    refreshes: refreshQueue,
    refreshMarginMs: async (name) => (await accountSettings(name)).refreshMarginMs,
    refreshWaitMs: Math.max(15_000, 2 * config.ROOMKEY_PROVIDER_TIMEOUT_MS),
    clock,
    warn: (message, details) => logger.warn(details, message),
  });

  // Page tokens carry a MAC under a key every replica derives alike, bound to the environment's incarnation.
  const pages = createPageTokens({
    key: derivePurposeKey(masterKey, "page-tokens"),
    incarnation: async (name) => String((await directory.require(name)).createTime.getTime()),
  });

  // Transports (api, all).
  let grpcPort = 0;
  let httpPort = 0;
  let closeTransports = async (_budgetMs: number) => true;
  let apiReady: Promise<void> = Promise.resolve();
  if (role !== "worker") {
    // The directory follows environments: events from other replicas at once, a full refresh as the fallback.
    cleanups.push(
      bus.subscribe(environmentsChannel, async (payload) => {
        if (isEnvironmentEvent(payload)) await directory.apply(payload);
      }),
      bus.subscribe(tokensChannel, (payload) => {
        const { hash, environment } = (payload ?? {}) as { hash?: unknown; environment?: unknown };
        if (typeof hash !== "string") return;
        verifier.invalidate(
          hash,
          typeof environment === "string" && isEnvironmentName(environment) ? environment : undefined,
        );
      }),
    );
    // Invalidations sent while the subscriber was disconnected are lost: forget everything it may have missed.
    const onResubscribed = () => verifier.clear();
    subscriber.on("ready", onResubscribed);
    cleanups.push(() => subscriber.off("ready", onResubscribed));
    const usageTimer = setInterval(() => {
      if (usage.busy()) return;
      usage.flush().catch((error: unknown) => logger.warn({ err: error }, "usage flush failed"));
    }, config.ROOMKEY_USAGE_FLUSH_MS);
    cleanups.push(
      () => clearInterval(usageTimer),
      () => usage.flush(),
    );
    const refreshTimer = setInterval(() => {
      directory.refresh().catch((error: unknown) => logger.debug({ err: error }, "environment refresh failed"));
    }, config.ROOMKEY_ENVIRONMENT_REFRESH_MS);
    cleanups.push(() => clearInterval(refreshTimer));
    const edge = createEdge({
      authenticator: createAuthenticator({
        adminKey: config.ROOMKEY_ADMIN_KEY,
        tokens: createTokenAuthenticator(verifier),
      }),
      throttle: createFailureThrottle({
        perMinute: config.ROOMKEY_AUTH_FAILURES_PER_MINUTE,
        burst: config.ROOMKEY_AUTH_FAILURE_BURST,
        maxPeers: 100_000,
        now: () => clock.now().getTime(),
      }),
      environments: directory,
      validator: createValidator({ failFast: true }),
      fullValidator: createValidator(),
      logger,
    });
    const bindings = [
      bindService(
        EnvironmentService,
        edge.wrap(
          EnvironmentService,
          createEnvironmentHandlers({ environments: environmentService, integrations: integrationService, pages }),
        ),
      ),
      bindService(
        TokenService,
        edge.wrap(
          TokenService,
          createTokenHandlers({ tokens: tokenService, verifier, pages, now: () => clock.now().getTime() }),
        ),
      ),
      bindService(
        AccountService,
        edge.wrap(
          AccountService,
          createAccountHandlers({ accounts: accountService, watch: accountWatch.watch, pages }),
        ),
      ),
    ];
    const serviceNames = bindings.map((b) => b.service.typeName);
    const health = new HealthImplementation(Object.fromEntries(["", ...serviceNames].map((s) => [s, "NOT_SERVING"])));
    const monitor = createHealthMonitor({
      health,
      services: serviceNames,
      probes: [
        // The gate's ping: health and the gate agree, and the gate learns every second.
        { name: "mongodb", check: () => mongoGate.probe() },
        { name: "redis", check: () => redis.ping() },
      ],
      intervalMs: 1_000,
      timeoutMs: 1_000,
      logger,
    });
    let transports: Awaited<ReturnType<typeof startTransports>>;
    try {
      transports = await startTransports(
        {
          host: config.ROOMKEY_HOST,
          port: config.ROOMKEY_GRPC_PORT,
          bindings,
          admit: edge.admit,
          health,
          maxMessageBytes: config.ROOMKEY_MAX_MESSAGE_BYTES,
          maxMetadataBytes: config.ROOMKEY_MAX_METADATA_BYTES,
          maxConcurrentStreams: config.ROOMKEY_MAX_CONCURRENT_STREAMS,
          logger,
          shutdownSignal: stopping.signal,
        },
        {
          host: config.ROOMKEY_HOST,
          port: config.ROOMKEY_HTTP_PORT,
          bindings,
          admit: edge.admit,
          maxMessageBytes: config.ROOMKEY_MAX_MESSAGE_BYTES,
          maxHeaderBytes: config.ROOMKEY_MAX_METADATA_BYTES,
          logger,
          shutdownSignal: stopping.signal,
        },
      );
    } catch (error) {
      // A port in use, say: release what was opened so the process can exit.
      stopping.abort();
      for (const cleanup of cleanups) await cleanup();
      for (const connection of Object.values(connections)) connection.disconnect();
      await mongo.close();
      throw error;
    }
    grpcPort = transports.grpcPort;
    httpPort = transports.httpPort;
    logger.info({ grpcPort, httpPort, host: config.ROOMKEY_HOST }, "listening");
    await monitor.start();
    closeTransports = (budgetMs) => {
      monitor.markStopping();
      edge.stop();
      return transports.close(() => edge.idle(), budgetMs);
    };

    // Bootstrap in the background, retried until MongoDB answers; health says NOT_SERVING until done.
    apiReady = (async () => {
      await mongoReady;
      for (let attempt = 1; !stopping.signal.aborted; attempt++) {
        try {
          await ensureCollections(control, [environmentsCollection, deploymentCollection, transitionsCollection]);
          await environmentService.bootstrap(config.ROOMKEY_DEFAULT_ENVIRONMENTS);
          // Collections and indexes a newer release declares, for environments made before it.
          await Promise.all((await environments.listActive()).map((env) => databases.provision(env.name)));
          await directory.refresh();
          monitor.markReady();
          return;
        } catch (error) {
          logger.warn({ err: error, attempt }, "bootstrap failed; retrying");
          await sleep(Math.min(5_000, 250 * attempt));
        }
      }
    })();
  }

  // Workers (worker, all).
  let servedEnvironments = (): string[] => [];
  let closeWorkers = async (_budgetMs: number) => true;
  let workersReady: Promise<void> = Promise.resolve();
  if (role !== "api") {
    if (role === "worker") {
      // Workers read data keys through the directory: keep it current as the API role does.
      cleanups.push(
        bus.subscribe(environmentsChannel, async (payload) => {
          if (isEnvironmentEvent(payload)) await directory.apply(payload);
        }),
      );
      const refreshTimer = setInterval(() => {
        directory.refresh().catch((error: unknown) => logger.debug({ err: error }, "environment refresh failed"));
      }, config.ROOMKEY_ENVIRONMENT_REFRESH_MS);
      cleanups.push(() => clearInterval(refreshTimer));
    }
    const handshakes = createHandshakes({
      store: accountRepository,
      integrations: integrationRepository,
      keys: directory,
      checker: createHttpCredentialChecker(providerOptions),
      oauth: oauthClient,
      events: accountWatch.events,
      clock,
    });
    const refresher = createRefresher({
      store: accountRepository,
      integrations: integrationRepository,
      keys: directory,
      oauth: oauthClient,
      events: accountWatch.events,
      clock,
    });
    const sweepRefreshes = createRefreshSweep({
      listDueForRefresh: (environment, expiringBefore, idleSince) =>
        accountRepository.listDueForRefresh(environment, expiringBefore, idleSince),
      refreshes: refreshQueue,
      settings: accountSettings,
      clock,
    });
    const sweepConnecting = createConnectingSweep({
      listConnecting: (environment, before) => accountRepository.listConnecting(environment, before),
      async jobState(environment, accountId, attempt) {
        const state = await queues.queue(environment, "handshake").getJobState(handshakeJobId(accountId, attempt));
        if (state === "unknown") return "missing";
        if (state === "completed" || state === "failed") return state;
        return "live";
      },
      async requeue(environment, accountId, attempt, incarnation) {
        await queues.queue(environment, "handshake").remove(handshakeJobId(accountId, attempt));
        await handshakeQueue.enqueue(environment, accountId, attempt, incarnation);
      },
      failStuck: (environment, accountId, attempt, reason, incarnation) =>
        handshakes.abandon(environment, accountId, attempt, reason, incarnation),
      clock,
      graceMs: config.ROOMKEY_HANDSHAKE_SWEEP_MS,
    });
    const schedules: JobSchedule[] = [
      { kind: "handshake", name: "sweep-connecting", everyMs: config.ROOMKEY_HANDSHAKE_SWEEP_MS },
      { kind: "rotation", name: "sweep-tokens", everyMs: tokenSweepEveryMs },
      { kind: "rotation", name: "sweep-accounts", everyMs: config.ROOMKEY_REFRESH_SWEEP_MS },
    ];
    const supervisor = createWorkerSupervisor({
      listEnvironments: async () =>
        (await environments.listAll()).map((env) => ({
          name: env.name,
          state: env.state,
          incarnation: incarnationOf(env),
        })),
      startWorker: createWorkerFactory({
        connection: workerRedis,
        prefix: config.ROOMKEY_QUEUE_PREFIX,
        processors: {
          handshake: handshakeProcessors({
            handshakes,
            async sweep(environment, options) {
              const result = await sweepConnecting(environment, options);
              const now = clock.now().getTime();
              const purged = await accountRepository.purgeKeys(environment, new Date(now - accountIdempotencyWindowMs));
              const purgedStates = await accountRepository.purgeStates(environment, new Date(now));
              // Day-old claims, and at once those a job of a replaced incarnation left.
              const purgedClaims = await purgeTransitions(
                environmentDatabases.db(environment),
                new Date(now - claimRetentionMs),
                options.incarnation,
              );
              if (result.requeued + result.failed > 0) logger.info({ environment, ...result }, "connecting sweep");
              return { ...result, purgedKeys: purged, purgedStates, purgedClaims };
            },
            logger,
          }),
          rotation: rotationProcessors({
            tokens: createTokenMaintenance({
              store: tokenRepository,
              invalidations,
              retentionMs: async (name) =>
                effectiveSettings((await environments.get(name))?.settings ?? {}).tokenRetentionMs,
              clock,
            }),
            refresher,
            sweepAccounts: sweepRefreshes,
            logger,
          }),
        },
        schedules,
        backoffStrategy: (attemptsMade, _type, error) =>
          providerBackoffMs(attemptsMade, retryAfterOf(error), config.ROOMKEY_PROVIDER_RETRY_MS),
        lockDurationMs: config.ROOMKEY_JOB_LOCK_MS,
        queues,
        incarnations: environments,
        concurrency: { handshake: 10, rotation: 10 },
        logger,
      }),
      removeQueues: (name) => queues.removeEnvironment(name),
      reconcileMs: config.ROOMKEY_ENVIRONMENT_REFRESH_MS,
      logger,
    });
    cleanups.push(bus.subscribe(environmentsChannel, () => supervisor.reconcile()));
    // Redis may come back without its data: the sweeps' schedulers are re-created and every lost handshake swept.
    const reconciler = createSchedulerReconciler({
      serving: () => supervisor.serving(),
      schedules,
      schedulers: createJobSchedulers({ connection: redis, queues }),
      onRestored: requestConnectingSweep,
      everyMs: config.ROOMKEY_SCHEDULER_CHECK_MS,
      logger,
    });
    const checkSchedulers = () => {
      reconciler.reconcile().catch((error: unknown) => logger.debug({ err: error }, "could not check job schedulers"));
    };
    for (const connection of [redis, workerRedis]) {
      connection.on("ready", checkSchedulers);
      cleanups.push(() => connection.off("ready", checkSchedulers));
    }
    cleanups.push(() => reconciler.stop());
    const sweep = createOrphanSweeper({
      listDatabases: () => databases.listWithDatabase(),
      listRecords: async () => (await environments.listAll()).map((r) => r.name),
      dropDatabase: (name) => databases.drop(name),
      logger,
    });
    const sweepTimer = setInterval(() => {
      sweep().catch((error: unknown) => logger.debug({ err: error }, "orphan sweep failed"));
      purgeTransitions(control, new Date(Date.now() - claimRetentionMs)).catch((error: unknown) =>
        logger.debug({ err: error }, "purging transition claims failed"),
      );
      environments
        .listAll()
        .then((records) => environmentService.finishAbandonedDeletes(records, abandonedDeleteMs))
        .then((finished) => {
          if (finished.length > 0) logger.info({ environments: finished }, "finished abandoned deletes");
        })
        .catch((error: unknown) => logger.debug({ err: error }, "finishing abandoned deletes failed"));
    }, 30_000);
    cleanups.push(() => clearInterval(sweepTimer));
    const heartbeatFile = config.ROOMKEY_WORKER_HEARTBEAT_FILE;
    if (heartbeatFile) {
      const beat = () => {
        try {
          writeFileSync(heartbeatFile, new Date().toISOString());
        } catch (error) {
          logger.warn({ err: error, file: heartbeatFile }, "could not write the heartbeat file");
        }
      };
      beat();
      const heartbeat = setInterval(beat, 5_000);
      cleanups.push(() => clearInterval(heartbeat));
    }
    workersReady = mongoReady.then(async () => {
      if (stopping.signal.aborted) return;
      await supervisor.start();
      if (!stopping.signal.aborted) reconciler.start();
    });
    servedEnvironments = () => supervisor.serving();
    closeWorkers = (budgetMs) => supervisor.close(budgetMs);
  }

  async function shutdown(): Promise<boolean> {
    const started = Date.now();
    const left = () => Math.max(100, config.ROOMKEY_SHUTDOWN_TIMEOUT_MS - (Date.now() - started));
    stopping.abort();
    const drained = await closeTransports(left());
    for (const cleanup of cleanups) await cleanup();
    const workersClosed = await closeWorkers(left());
    // After the workers: their provider calls in flight keep their connections.
    outbound.close();
    await settlesWithin(queues.close(), left());
    for (const connection of Object.values(connections)) connection.disconnect();
    await settlesWithin(mongo.close(), left());
    logger.info({ drained, workersClosed, ms: Date.now() - started }, "shut down");
    return drained && workersClosed;
  }

  let shuttingDown: Promise<boolean> | undefined;
  return {
    grpcPort,
    httpPort,
    ready: Promise.all([apiReady, workersReady]).then(() => undefined),
    servedEnvironments: () => servedEnvironments(),
    shutdown: () => {
      shuttingDown ??= shutdown();
      return shuttingDown;
    },
  };
}

function parseRole(argument: string | undefined): Role {
  if (argument === undefined) return "all";
  if (argument === "all" || argument === "api" || argument === "worker") return argument;
  throw new ConfigError(`unknown role "${argument}": use all, api or worker`);
}

/** The process entry: parse, start, and shut down on SIGTERM/SIGINT within a bounded time. */
async function run(): Promise<void> {
  let config: Config;
  let role: Role;
  try {
    role = parseRole(process.argv[2]);
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`roomkey: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.ROOMKEY_LOG_LEVEL);
  let app: Roomkey | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "shutting down");
    if (!app) process.exit(1);
    setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, config.ROOMKEY_SHUTDOWN_TIMEOUT_MS + 2_000).unref();
    app.shutdown().then(
      (clean) => process.exit(clean ? 0 : 1),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  app = await startRoomkey(config, role, logger);
}

const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  run().catch((error: unknown) => {
    process.stderr.write(`roomkey: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
