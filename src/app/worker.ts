import { writeFileSync } from "node:fs";
import { handshakeProcessors, retryAfterOf } from "../../workers/handshake.worker.js";
import { startMaintenance } from "../../workers/maintenance.js";
import { createOrphanSweeper } from "../../workers/orphan-sweeper.js";
import { createRewrapSweep, rewrapSweepEveryMs } from "../../workers/rewrap-sweep.js";
import { rotationProcessors, tokenSweepEveryMs } from "../../workers/rotation.worker.js";
import { createWorkerSupervisor } from "../../workers/supervisor.js";
import { createSweepClock, type Sweep } from "../../workers/sweep-clock.js";
import { webhookProcessors, webhookPurgeEveryMs } from "../../workers/webhook.worker.js";
import { createWorkerFactory } from "../../workers/worker-factory.js";
import { createConnectingSweep, createHandshakes } from "../domain/accounts/handshake.js";
import { createHandshakeSweep } from "../domain/accounts/handshake-sweep.js";
import { createRefresher, createRefreshSweep } from "../domain/accounts/refresher.js";
import { createRevocationSweep, createUpstreamRevocations } from "../domain/accounts/upstream-revocation.js";
import { workerActions } from "../domain/audit/audit.js";
import { auditPolicy } from "../domain/audit/audit-policy.js";
import { workerAudit } from "../domain/audit/audit-recorder.js";
import { auditedAccountEvents } from "../domain/audit/worker-audit.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import { effectiveSettings, incarnationOf } from "../domain/environments/environments.js";
import { createTokenMaintenance } from "../domain/tokens/token-maintenance.js";
import { createWebhookDelivery, DeliveryAttemptFailedError } from "../domain/webhooks/webhook-delivery.js";
import { createHttpCredentialChecker } from "../providers/http-credential-checker.js";
import { beatsPerLease, sweepConcurrency, sweepTickMs, wakePollMs } from "../queue/fleet-policy.js";
import { handshakeJobId, type QueueKind } from "../queue/queue-names.js";
import {
  handshakeWriteRetries,
  providerBackoffMs,
  revocationBackoff,
  revocationBackoffMs,
  revocationSweepGraceMs,
  webhookBackoff,
  webhookRetryDelayMs,
} from "../queue/retry-policy.js";
import { createWakeIndex } from "../queue/wake-index.js";
import { createWorkerFleet, newWorkerId } from "../queue/worker-fleet.js";
import { claimRetentionMs, purgeTransitions } from "../storage/versioned.js";
import { reportUnopenableDataKeys } from "./master-key-report.js";
import { environmentsChannel, type Stage } from "./services.js";

/** A `deleting` record untouched for this long was abandoned mid-way; the workers finish it. */
const abandonedDeleteMs = 60_000;

export interface Workers {
  /** Resolves once the workers ran their first pass. */
  ready: Promise<void>;
  /** Environments this process serves now (its share of the fleet's). */
  served(): string[];
  /** Queues that have a BullMQ worker now (the others are idle). */
  liveQueues(): string[];
  /** Runs one of an environment's sweeps now, in this process, and returns its result. */
  runSweep(environment: string, name: string): Promise<unknown>;
  /** Closes every worker, letting jobs in flight finish within the budget; true if they all did. */
  close(budgetMs: number): Promise<boolean>;
}

/**
 * Stage 3 (roles worker and all): the domain's job runners for this process's share of the environments (a
 * BullMQ worker per queue with work), their sweeps, housekeeping.
 */
export function startWorkers({ config, clients, services, logger, clock, stopping, cleanups }: Stage): Workers {
  const { redis, workerRedis, mongoReady } = clients;
  const { accountRepository, integrationRepository, directory, oauthClient, queues, producers } = services;
  const { environments, databases, environmentDatabases, environmentService } = services;
  // The worker's state changes go to each environment's audit log.
  const audit = workerAudit(services.auditRecorder);
  cleanups.push(services.auditRecorder.keepFlushing(auditPolicy.flushEveryMs));
  const accountEvents = auditedAccountEvents(services.accountEvents, audit);
  const handshakes = createHandshakes({
    store: accountRepository,
    integrations: integrationRepository,
    keys: directory,
    checker: createHttpCredentialChecker(services.providerOptions),
    oauth: oauthClient,
    events: accountEvents,
    clock,
    writeRetries: handshakeWriteRetries,
    // Webhook events of outcomes are named by their attempt: telling one again is safe.
    retell: services.accountHooks,
  });
  const refresher = createRefresher({
    store: accountRepository,
    integrations: integrationRepository,
    keys: directory,
    oauth: oauthClient,
    events: accountEvents,
    clock,
  });
  const sweepRefreshes = createRefreshSweep({
    listDueForRefresh: (environment, expiringBefore, idleSince) =>
      accountRepository.listDueForRefresh(environment, expiringBefore, idleSince),
    refreshes: producers.refreshes,
    settings: services.accountSettings,
    clock,
  });
  // After DeleteAccount: the account's tokens revoked at the provider (RFC 7009), lost jobs queued again by the account sweep.
  const revocations = createUpstreamRevocations({
    store: accountRepository,
    integrations: integrationRepository,
    keys: directory,
    oauth: oauthClient,
    clock,
  });
  const sweepRevocations = createRevocationSweep({
    listPendingRevocations: (environment, before) => accountRepository.listPendingRevocations(environment, before),
    revocations: producers.revocations,
    clock,
    graceMs: revocationSweepGraceMs,
  });
  const sweepAccounts = async (environment: string, incarnation: string) => ({
    ...(await sweepRefreshes(environment, incarnation)),
    revocations: await sweepRevocations(environment, incarnation),
  });
  const sweepHandshakes = createHandshakeSweep({
    sweepConnecting: createConnectingSweep({
      listConnecting: (environment, before) => accountRepository.listConnecting(environment, before),
      async jobState(environment, accountId, attempt) {
        const state = await queues.queue(environment, "handshake").getJobState(handshakeJobId(accountId, attempt));
        if (state === "unknown") return "missing";
        if (state === "completed" || state === "failed") return state;
        // Waiting past the grace: nothing woke a worker for it (a signal lost), so wake one. (A delayed
        // retry is the wake index's at its time; a running one has its worker, or its lock's expiry.)
        if (state === "waiting" || state === "prioritized") await services.jobs.signal(environment, "handshake");
        return "live";
      },
      async requeue(environment, accountId, attempt, incarnation) {
        await queues.queue(environment, "handshake").remove(handshakeJobId(accountId, attempt));
        await producers.handshakes.enqueue(environment, accountId, attempt, incarnation);
      },
      failStuck: (environment, accountId, attempt, reason, incarnation) =>
        handshakes.abandon(environment, accountId, attempt, reason, incarnation),
      clock,
      graceMs: config.ROOMKEY_HANDSHAKE_SWEEP_MS,
    }),
    store: accountRepository,
    purgeSessions: (environment, before) => services.connectSessionRepository.purgeEnded(environment, before),
    purgeClaims: (environment, before, incarnation) =>
      purgeTransitions(environmentDatabases.db(parseEnvironmentName(environment, "environment")), before, incarnation),
    claimRetentionMs,
    clock,
    onSwept: (environment, result) => logger.info({ environment, ...result }, "connecting sweep"),
  });
  const webhookDelivery = createWebhookDelivery({
    store: services.webhookRepository,
    queue: producers.webhooks,
    keys: directory,
    async send(url, headers, body) {
      const result = await services.webhookOutbound.send({ url, method: "POST", headers, body });
      return result.kind === "response" ? { kind: "response", status: result.response.status } : result;
    },
    raiser: services.webhookRaiser,
    expiring: {
      async listExpiringUnannounced(environment, before, limit) {
        const now = clock.now();
        const tokens = await services.tokenRepository.listActiveExpiringBefore(environment, before, now, 10 * limit);
        const told = await services.webhookRepository.announced(
          environment,
          "token.expiring",
          tokens.map((t) => t.id),
        );
        return tokens.filter((t) => !told.has(t.id)).slice(0, limit);
      },
      markExpiringAnnounced: (environment, id, at) =>
        services.webhookRepository.announce(environment, "token.expiring", id, at),
    },
    attempts: config.ROOMKEY_WEBHOOK_ATTEMPTS,
    allowHttp: config.ROOMKEY_WEBHOOK_ALLOW_HTTP,
    retryDelayMs: (failed) =>
      webhookRetryDelayMs(failed, config.ROOMKEY_WEBHOOK_RETRY_BASE_MS, config.ROOMKEY_WEBHOOK_RETRY_MAX_MS),
    disableAfterMs: config.ROOMKEY_WEBHOOK_DISABLE_AFTER_MS,
    expiringWindowMs: config.ROOMKEY_WEBHOOK_TOKEN_EXPIRING_MS,
    retentionMs: config.ROOMKEY_WEBHOOK_RETENTION_MS,
    // A delivery still queued re-queues as nothing (its job id): a short wait only costs a Redis call.
    overdueMs: 2 * config.ROOMKEY_JOB_LOCK_MS,
    clock,
    observe: { attempt: services.metrics.webhookAttempt, disabled: services.metrics.endpointDisabled },
    audit,
  });
  const tokenMaintenance = createTokenMaintenance({
    store: services.tokenRepository,
    invalidations: services.invalidations,
    retentionMs: async (name) => effectiveSettings((await environments.get(name))?.settings ?? {}).tokenRetentionMs,
    clock,
    audit,
  });
  // In process, not jobs: an idle environment then costs no Redis command (workers/sweep-clock.ts).
  const sweeps: Sweep[] = [
    {
      name: "sweep-connecting",
      everyMs: config.ROOMKEY_HANDSHAKE_SWEEP_MS,
      run: (environment, incarnation) => sweepHandshakes(environment, { noGrace: false, incarnation }),
    },
    { name: "sweep-tokens", everyMs: tokenSweepEveryMs, run: (environment) => tokenMaintenance.sweep(environment) },
    { name: "sweep-accounts", everyMs: config.ROOMKEY_REFRESH_SWEEP_MS, run: sweepAccounts },
    {
      name: "sweep-webhooks",
      everyMs: config.ROOMKEY_WEBHOOK_SWEEP_MS,
      async run(environment) {
        const result = await webhookDelivery.sweep(environment);
        if (result.requeued > 0) logger.info({ environment, ...result }, "webhook sweep");
      },
    },
    {
      name: "purge-webhooks",
      everyMs: Math.min(webhookPurgeEveryMs, Math.max(500, config.ROOMKEY_WEBHOOK_RETENTION_MS / 10)),
      run: (environment) => webhookDelivery.purge(environment),
    },
    {
      name: "purge-audit",
      everyMs: auditPolicy.retentionSweepEveryMs,
      run: (environment) => services.auditService.enforceRetention(environment),
    },
  ];
  const sweepClock = createSweepClock({
    sweeps,
    incarnations: environments,
    concurrency: sweepConcurrency,
    tickMs: sweepTickMs,
    logger,
  });
  const wakes = createWakeIndex({ redis, prefix: config.ROOMKEY_QUEUE_PREFIX });
  /** When a queue next has work; see WorkerSupervisorDeps.nextWork. */
  async function nextWork(environment: string, kind: QueueKind): Promise<number | undefined> {
    const queue = queues.queue(environment, kind);
    const counts = await queue.getJobCounts("wait", "prioritized", "active");
    const at = clock.now().getTime();
    if ((counts.wait ?? 0) + (counts.prioritized ?? 0) > 0) return at;
    const [, score] = await redis.zrange(queue.toKey("delayed"), 0, 0, "WITHSCORES");
    // BullMQ scores a delayed job by its time × 0x1000 plus a counter (getDelayedScore.lua).
    const times = score === undefined ? [] : [Math.floor(Number(score) / 0x1000)];
    if ((counts.active ?? 0) > 0) times.push(at + config.ROOMKEY_JOB_LOCK_MS);
    return times.length > 0 ? Math.min(...times) : undefined;
  }
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
        handshake: handshakeProcessors({ handshakes, sweep: sweepHandshakes, logger }),
        rotation: rotationProcessors({
          tokens: tokenMaintenance,
          refresher,
          revocations,
          dataKeys: services.masterKeyRotation,
          onRewrap: (done) =>
            done.outcome === "rewrapped"
              ? audit.record(done.environment, {
                  method: workerActions.masterKeyRewrap,
                  resource: done.environment,
                  details: { from: done.from.id, to: done.to.id },
                })
              : undefined,
          logger,
        }),
        webhook: webhookProcessors({ delivery: webhookDelivery, logger }),
      },
      backoffStrategy: (attemptsMade, type, error) => {
        if (type === webhookBackoff && error instanceof DeliveryAttemptFailedError) return error.retryAfterMs;
        if (type === revocationBackoff) {
          return revocationBackoffMs(attemptsMade, retryAfterOf(error), config.ROOMKEY_PROVIDER_RETRY_MS);
        }
        return providerBackoffMs(attemptsMade, retryAfterOf(error), config.ROOMKEY_PROVIDER_RETRY_MS);
      },
      // An endpoint that fails is the endpoint's news, not roomkey's: its log says so, at info.
      expectedFailure: (error) => error instanceof DeliveryAttemptFailedError,
      lockDurationMs: config.ROOMKEY_JOB_LOCK_MS,
      incarnations: environments,
      concurrency: { handshake: 10, rotation: 10, webhook: 20 },
      logger,
      observeJob: services.metrics.job,
      observeHandshake: services.metrics.handshake,
    }),
    removeQueues: (name) => queues.removeEnvironment(name),
    fleet: createWorkerFleet({
      redis,
      prefix: config.ROOMKEY_QUEUE_PREFIX,
      id: newWorkerId(),
      leaseMs: config.ROOMKEY_WORKER_LEASE_MS,
    }),
    wakes,
    nextWork,
    sweeps: sweepClock,
    // Redis lost its data, and with it the jobs: a sweep without grace queues the lost handshakes again.
    onRedisLost: producers.requestConnectingSweep,
    reconcileMs: config.ROOMKEY_ENVIRONMENT_REFRESH_MS,
    beatMs: Math.floor(config.ROOMKEY_WORKER_LEASE_MS / beatsPerLease),
    pollMs: wakePollMs,
    idleMs: config.ROOMKEY_WORKER_IDLE_MS,
    logger,
  });
  cleanups.push(services.bus.subscribe(environmentsChannel, () => supervisor.reconcile()));
  services.metrics.attachWorkers({
    served: () => supervisor.serving(),
    liveQueues: () => supervisor.liveQueues().length,
  });

  const sweepOrphans = createOrphanSweeper({
    listDatabases: () => databases.listWithDatabase(),
    listRecords: async () => (await environments.listAll()).map((r) => r.name),
    dropDatabase: (name) => databases.drop(name),
    logger,
  });
  cleanups.push(
    startMaintenance({
      sweepOrphans,
      purgeControlClaims: () => purgeTransitions(services.control, new Date(Date.now() - claimRetentionMs)),
      finishAbandonedDeletes: async () =>
        environmentService.finishAbandonedDeletes(await environments.listAll(), abandonedDeleteMs),
      everyMs: 30_000,
      logger,
    }),
  );
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
  // Data keys under a master key other than the current one: moved by rewrap jobs, looked for after start-up and then periodically.
  const sweepRewraps = createRewrapSweep({
    served: () => supervisor.serving(),
    known: () => directory.list(),
    rotation: services.masterKeyRotation,
    queue: producers.rewraps,
    currentFingerprint: services.keyring.current.fingerprint,
    logger,
  });
  const rewrapTimer = setInterval(() => {
    sweepRewraps().catch((error: unknown) => logger.warn({ err: error }, "rewrap sweep failed"));
  }, rewrapSweepEveryMs);
  rewrapTimer.unref();
  cleanups.push(() => clearInterval(rewrapTimer));
  const ready = mongoReady.then(async () => {
    if (stopping.aborted) return;
    await supervisor.start();
    if (!stopping.aborted) sweepClock.start();
    await directory
      .refresh()
      .then(() => reportUnopenableDataKeys(services.masterKeyRotation, directory.list(), logger))
      .then(() => sweepRewraps())
      .catch((error: unknown) => logger.warn({ err: error }, "first rewrap sweep failed; the next one tries again"));
  });
  return {
    ready,
    served: () => supervisor.serving(),
    liveQueues: () => supervisor.liveQueues(),
    runSweep: (environment, name) => sweepClock.runNow(environment, name),
    async close(budgetMs) {
      const started = Date.now();
      await sweepClock.stop(budgetMs / 4);
      return supervisor.close(Math.max(100, budgetMs - (Date.now() - started)));
    },
  };
}
