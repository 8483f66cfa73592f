import { createValidator } from "@bufbuild/protovalidate";
import { HealthImplementation } from "grpc-health-check";
import { createQueueDashboard, isDashboardPath } from "../admin/queue-dashboard.js";
import { sleep } from "../async.js";
import { connectAssetsPath, createConnectPage, isConnectPath } from "../connect-page/connect-page.js";
import { auditPolicy } from "../domain/audit/audit-policy.js";
import { originOf } from "../domain/connect-sessions/connect-sessions.js";
import { isEnvironmentName } from "../domain/environments/environment-name.js";
import { incarnationOf } from "../domain/environments/environments.js";
import { AccountService } from "../gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../gen/roomkey/v1/token_service_pb.js";
import { createHealthMonitor } from "../health/health-monitor.js";
import {
  adminKeyMatcher,
  createAuthenticator,
  createSessionAuthenticator,
  createTokenAuthenticator,
} from "../rpc/authentication.js";
import { createEdge } from "../rpc/edge.js";
import { createFailureThrottle } from "../rpc/failure-throttle.js";
import { createAccountHandlers } from "../rpc/handlers/account-handlers.js";
import { createAuditHandlers } from "../rpc/handlers/audit-handlers.js";
import { createEnvironmentHandlers } from "../rpc/handlers/environment-handlers.js";
import { createMasterKeyHandlers } from "../rpc/handlers/master-key-handlers.js";
import { createPromotionHandlers } from "../rpc/handlers/promotion-handlers.js";
import { createTokenHandlers } from "../rpc/handlers/token-handlers.js";
import { sessionMethodKeys } from "../rpc/method-policy.js";
import { bindService, startTransports } from "../rpc/servers.js";
import { provisionedCollection } from "../storage/environment-databases.js";
import { deploymentCollection, environmentsCollection } from "../storage/environment-repository.js";
import { ensureCollections } from "../storage/mongo.js";
import { transitionsCollection } from "../storage/versioned.js";
import { connectPageBackend, pageRoutes, throttledPage } from "./connect-page-backend.js";
import { reportUnopenableDataKeys } from "./master-key-report.js";
import { connectSessionsChannel, type Stage, tokensChannel } from "./services.js";

export interface Api {
  grpcPort: number;
  httpPort: number;
  /** Resolves once the default environments exist and health says SERVING. */
  ready: Promise<void>;
  /** Stops taking calls and waits for those in flight, within the budget; true if they all finished. */
  close(budgetMs: number): Promise<boolean>;
}

/** Stage 3 (roles api and all): token invalidations, usage flushes, the edge, both servers and the bootstrap. */
export async function startApi({ config, clients, services, logger, clock, stopping, cleanups }: Stage): Promise<Api> {
  const { subscriber, redis, mongoGate, mongoReady } = clients;
  const { bus, verifier, usage, directory, environmentService, environments, databases, control, pages } = services;
  cleanups.push(
    bus.subscribe(tokensChannel, (payload) => {
      const { hash, environment } = (payload ?? {}) as { hash?: unknown; environment?: unknown };
      if (typeof hash !== "string") return;
      verifier.invalidate(
        hash,
        typeof environment === "string" && isEnvironmentName(environment) ? environment : undefined,
      );
    }),
  );
  cleanups.push(
    bus.subscribe(connectSessionsChannel, (payload) => {
      const { hash } = (payload ?? {}) as { hash?: unknown };
      if (typeof hash === "string") services.sessionVerifier.invalidate(hash);
    }),
  );
  // Invalidations sent while the subscriber was disconnected are lost: forget everything it may have missed.
  const onResubscribed = () => {
    verifier.clear();
    services.sessionVerifier.clear();
  };
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

  const { auditRecorder } = services;
  cleanups.push(auditRecorder.keepFlushing(auditPolicy.flushEveryMs));

  const sessionAuthenticator = createSessionAuthenticator(services.sessionVerifier);
  const throttle = createFailureThrottle({
    perMinute: config.ROOMKEY_AUTH_FAILURES_PER_MINUTE,
    burst: config.ROOMKEY_AUTH_FAILURE_BURST,
    maxPeers: 100_000,
    now: () => clock.now().getTime(),
  });
  const edge = createEdge({
    authenticator: createAuthenticator({
      adminKey: config.ROOMKEY_ADMIN_KEY,
      tokens: createTokenAuthenticator(verifier),
      sessions: sessionAuthenticator,
    }),
    throttle,
    environments: directory,
    validator: createValidator({ failFast: true }),
    fullValidator: createValidator(),
    logger,
    observer: services.metrics,
    ownOrigin: () => originOf(services.publicUrl.value),
    audit: {
      record: (environment, facts) => auditRecorder.record(environment, facts),
      note: (environment, facts, aggregate) => auditRecorder.note(environment, facts, aggregate),
      knows: (environment) => directory.has(environment),
    },
  });
  const dashboardMode = config.ROOMKEY_DASHBOARD;
  const dashboard =
    dashboardMode === "off"
      ? undefined
      : createQueueDashboard({
          mode: dashboardMode,
          isAdminKey: adminKeyMatcher(config.ROOMKEY_ADMIN_KEY),
          environments: () => directory.names(),
          queue: (environment, kind) => services.queues.queue(environment, kind),
          wake: (environment, kind) => services.jobs.signal(environment, kind),
          throttle,
          logger,
        });
  const bindings = [
    bindService(
      EnvironmentService,
      edge.wrap(
        EnvironmentService,
        createEnvironmentHandlers({
          environments: environmentService,
          integrations: services.integrationService,
          webhooks: services.webhookService,
          pages,
          promotion: createPromotionHandlers({ promotion: services.integrationPromotion, pages }),
          audit: createAuditHandlers({ audit: services.auditService, pages }),
          masterKeys: createMasterKeyHandlers({ rotation: services.masterKeyRotation }),
        }),
      ),
    ),
    bindService(
      TokenService,
      edge.wrap(
        TokenService,
        createTokenHandlers({ tokens: services.tokenService, verifier, pages, now: () => clock.now().getTime() }),
      ),
    ),
    bindService(
      AccountService,
      edge.wrap(
        AccountService,
        createAccountHandlers({
          accounts: services.accountService,
          sessions: services.connectSessions,
          watch: services.accountWatch.watch,
          pages,
        }),
      ),
    ),
  ];
  const connectPage = throttledPage(
    createConnectPage({
      ...connectPageBackend({
        sessions: services.connectSessions,
        authenticate: (secret, environment) => sessionAuthenticator.authenticate(secret, environment),
        environments: directory,
        clock,
        audit: auditRecorder,
      }),
      logger,
    }),
    throttle,
    (path) => path.startsWith(connectAssetsPath),
  );
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
  const transports = await startTransports(
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
      shutdownSignal: stopping,
    },
    {
      host: config.ROOMKEY_HOST,
      port: config.ROOMKEY_HTTP_PORT,
      bindings,
      admit: edge.admit,
      maxMessageBytes: config.ROOMKEY_MAX_MESSAGE_BYTES,
      maxHeaderBytes: config.ROOMKEY_MAX_METADATA_BYTES,
      logger,
      shutdownSignal: stopping,
      pages: pageRoutes([
        ...(dashboard ? [{ matches: isDashboardPath, handle: dashboard }] : []),
        { matches: isConnectPath, handle: connectPage },
      ]),
      corsPaths: new Set(sessionMethodKeys.map((key) => `/${key}`)),
    },
  );
  const { grpcPort, httpPort } = transports;
  // Local runs: connect URLs and the OAuth callback on the port just bound.
  if (!services.publicUrl.value) {
    services.publicUrl.value = `http://127.0.0.1:${httpPort}`;
    logger.info(
      { publicUrl: services.publicUrl.value },
      "ROOMKEY_PUBLIC_URL is not set: connect URLs and the OAuth callback use this local address",
    );
  }
  logger.info({ grpcPort, httpPort, host: config.ROOMKEY_HOST }, "listening");
  await monitor.start();

  // Bootstrap in the background, retried until MongoDB answers; health says NOT_SERVING until done.
  const ready = (async () => {
    await mongoReady;
    for (let attempt = 1; !stopping.aborted; attempt++) {
      try {
        await ensureCollections(control, [
          environmentsCollection,
          deploymentCollection,
          transitionsCollection,
          provisionedCollection,
        ]);
        await environmentService.bootstrap(config.ROOMKEY_DEFAULT_ENVIRONMENTS);
        // Collections and indexes a newer release declares, for environments made before it (or not yet checked).
        const records = await environments.listAll();
        await databases.provisionStale(
          records
            .filter((env) => env.state === "active")
            .map((env) => ({ name: env.name, incarnation: incarnationOf(env) })),
          records.map((env) => env.name),
        );
        await directory.refresh();
        reportUnopenableDataKeys(services.masterKeyRotation, directory.list(), logger);
        monitor.markReady();
        return;
      } catch (error) {
        // Shut down while bootstrapping: its connections closed under it, nothing went wrong.
        if (stopping.aborted) return;
        logger.warn({ err: error, attempt }, "bootstrap failed; retrying");
        await sleep(Math.min(5_000, 250 * attempt));
      }
    }
  })();

  return {
    grpcPort,
    httpPort,
    ready,
    close(budgetMs) {
      monitor.markStopping();
      edge.stop();
      return transports.close(() => edge.idle(), budgetMs);
    },
  };
}
