import type { Logger } from "pino";
import { type Config, masterKeysOf } from "../config.js";
import { createAccountService } from "../domain/accounts/account-service.js";
import { auditPolicy } from "../domain/audit/audit-policy.js";
import { createAuditRecorder } from "../domain/audit/audit-recorder.js";
import { createAuditService } from "../domain/audit/audit-service.js";
import type { Clock } from "../domain/clock.js";
import { createConnectSessionService } from "../domain/connect-sessions/connect-session-service.js";
import { createSessionVerifier } from "../domain/connect-sessions/session-verifier.js";
import { createKeyring, derivePurposeKey } from "../domain/crypto/envelope.js";
import { createEnvironmentDirectory } from "../domain/environments/environment-directory.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import { createEnvironmentService } from "../domain/environments/environment-service.js";
import { effectiveSettings, incarnationOf } from "../domain/environments/environments.js";
import { createMasterKeyRotation, dataKeysByMasterKey } from "../domain/environments/master-key-rotation.js";
import type { EnvironmentEventPublisher } from "../domain/environments/ports.js";
import { createIntegrationPromotion } from "../domain/integrations/integration-promotion.js";
import { createIntegrationService } from "../domain/integrations/integration-service.js";
import { createPageTokens } from "../domain/paging.js";
import { createTokenService } from "../domain/tokens/token-service.js";
import { createTokenVerifier } from "../domain/tokens/token-verifier.js";
import { createUsageRecorder } from "../domain/tokens/usage-recorder.js";
import { accountWebhooks, createWebhookRaiser, tokenWebhooks } from "../domain/webhooks/webhook-raiser.js";
import { createWebhookService } from "../domain/webhooks/webhook-service.js";
import { createAccountWatch } from "../events/account-watch.js";
import { createEventBus } from "../events/event-bus.js";
import { createMetrics, queueStates } from "../metrics/metrics.js";
import { createHttpOAuthClient } from "../providers/http-oauth-client.js";
import { createOutboundHttp, type HostResolver, queryingResolver } from "../providers/outbound-http.js";
import { createJobProducer } from "../queue/job-producer.js";
import { createProducers } from "../queue/producers.js";
import { createQueueRegistry } from "../queue/queue-registry.js";
import { maxProviderRetryAfterMs } from "../queue/retry-policy.js";
import { createWakeIndex } from "../queue/wake-index.js";
import { renderWebhookEvent } from "../rpc/mappers/webhook-mapper.js";
import {
  accountKeysCollection,
  accountsCollection,
  createAccountCounter,
  createAccountRepository,
  oauthStatesCollection,
} from "../storage/account-repository.js";
import { auditEventsCollection, createAuditRepository } from "../storage/audit-repository.js";
import { connectSessionsCollection, createConnectSessionRepository } from "../storage/connect-session-repository.js";
import { createEnvironmentDatabases } from "../storage/environment-databases.js";
import { createEnvironmentRepository } from "../storage/environment-repository.js";
import { createIntegrationRepository, integrationsCollection } from "../storage/integration-repository.js";
import { databaseNames } from "../storage/mongo.js";
import {
  createTokenRepository,
  idempotencyCollection,
  tokensCollection,
  tokenUsageCollection,
} from "../storage/token-repository.js";
import { transitionsCollection } from "../storage/versioned.js";
import { createWebhookRepository, webhookCollections } from "../storage/webhook-repository.js";
import type { Clients } from "./clients.js";

/** The pub/sub channels replicas and workers follow. */
export const environmentsChannel = "environments";
export const tokensChannel = "tokens";
export const connectSessionsChannel = "connect-sessions";

/** What tests replace of the outside world. */
export interface RoomkeySeams {
  /** DNS for provider calls (the outbound guard); the system's by default. */
  resolveHost?: HostResolver;
  /** Shown the composed clients and services (benchmarks count their commands and call the raiser). */
  inspect?(parts: { clients: Clients; services: Services }): void;
}

export type Services = ReturnType<typeof composeServices>;

/** What the API and worker stages start from. */
export interface Stage {
  config: Config;
  clients: Clients;
  services: Services;
  logger: Logger;
  clock: Clock;
  /** Aborted when shutdown begins. */
  stopping: AbortSignal;
  /** Run in order at shutdown, after the servers stopped taking calls. */
  cleanups: (() => unknown)[];
}

/** Stage 2: repositories behind the MongoDB gate, queues, pub/sub and the domain services. */
export function composeServices(config: Config, clients: Clients, logger: Logger, clock: Clock, seams: RoomkeySeams) {
  const { mongo, redis, subscriber, mongoGate } = clients;
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
    connectSessionsCollection,
    ...webhookCollections,
    auditEventsCollection,
  ]);
  const databases = guard({
    provision: (name: string, incarnation: string) =>
      environmentDatabases.provision(parseEnvironmentName(name, "environment"), incarnation),
    provisionStale: (environments: readonly { name: string; incarnation: string }[], recorded: readonly string[]) =>
      environmentDatabases.provisionStale(
        environments.map((env) => ({
          name: parseEnvironmentName(env.name, "environment"),
          incarnation: env.incarnation,
        })),
        recorded,
      ),
    drop: (name: string) => environmentDatabases.drop(parseEnvironmentName(name, "environment")),
    listWithDatabase: () => environmentDatabases.listWithDatabase(),
  });
  const tokenRepository = guard(createTokenRepository(environmentDatabases));
  const accounts = guard(createAccountCounter(environmentDatabases));
  const accountRepository = guard(createAccountRepository(environmentDatabases, environments));
  const integrationRepository = guard(createIntegrationRepository(environmentDatabases));
  const webhookRepository = guard(createWebhookRepository(environmentDatabases));
  const connectSessionRepository = guard(createConnectSessionRepository(environmentDatabases));
  const auditRepository = guard(createAuditRepository(environmentDatabases));
  const wakes = createWakeIndex({ redis, prefix: config.ROOMKEY_QUEUE_PREFIX });
  const queues = createQueueRegistry({ connection: redis, prefix: config.ROOMKEY_QUEUE_PREFIX, wakes, logger });
  const bus = createEventBus({ publisher: redis, subscriber, prefix: config.ROOMKEY_QUEUE_PREFIX, logger });

  const masterKeys = masterKeysOf(config);
  const keyring = createKeyring(masterKeys);
  // The current master key comes first (masterKeysOf orders them).
  const [currentMasterKey, ...otherMasterKeys] = masterKeys.keys.map((entry) => entry.key);
  if (!currentMasterKey) throw new Error("no master key: loadConfig accepts none");
  // Tokens cached for an environment go with it (`verifier` is made below; called only later).
  const directory = createEnvironmentDirectory({
    source: environments,
    keyring,
    clock,
    listTrustMs: 2 * config.ROOMKEY_ENVIRONMENT_REFRESH_MS,
    onGone: (name) => {
      verifier.invalidateEnvironment(name);
      sessionVerifier.invalidateEnvironment(name);
    },
  });
  const environmentEvents: EnvironmentEventPublisher = {
    async publish(event) {
      // This replica first, then the others.
      await directory.apply(event).catch((error: unknown) => logger.warn({ err: error }, "directory update failed"));
      await bus.publish(environmentsChannel, event);
    },
  };
  const environmentService = createEnvironmentService({
    store: environments,
    resources: {
      assertQueuesReachable: () => queues.assertReachable(),
      provision: (name, incarnation) => databases.provision(name, incarnation),
      dropDatabase: (name) => databases.drop(name),
      removeQueues: (name) => queues.removeEnvironment(name),
    },
    accounts,
    keyring,
    events: environmentEvents,
    clock,
  });

  // Tokens: verification from an in-process cache, invalidated on every replica through pub/sub.
  /**
   * Both credential caches (tokens, connect sessions): trusted for the configured time when no
   * invalidation comes; "no such secret" remembered 5 s; at most 100,000 entries of each kind.
   */
  const credentialCache = { ttlMs: config.ROOMKEY_TOKEN_CACHE_TTL_MS, negativeTtlMs: 5_000, maxEntries: 100_000 };
  const environmentExists = async (name: string) => (await directory.find(name)) !== undefined;
  const usage = createUsageRecorder({ writer: tokenRepository, environmentExists, logger });
  const verifier = createTokenVerifier({
    lookup: tokenRepository,
    knownHashes: tokenRepository,
    environmentExists,
    environmentKnown: (name) => directory.has(name),
    usage,
    clock,
    ...credentialCache,
  });
  const invalidations = {
    async publish(environment: string, hash: string) {
      verifier.invalidate(hash, environment);
      return bus.publish(tokensChannel, { environment, hash });
    },
  };
  const jobs = createJobProducer(queues, wakes);
  const producers = createProducers({
    queues,
    jobs,
    redis,
    incarnationFor: async (environment, given) => given ?? incarnationOf(await directory.require(environment)),
    clock,
    logger,
  });
  // Webhooks: events stored in the environment's database, delivered from its webhook queue.
  const webhookRaiser = createWebhookRaiser({
    store: webhookRepository,
    queue: producers.webhooks,
    attempts: config.ROOMKEY_WEBHOOK_ATTEMPTS,
    render: renderWebhookEvent,
    clock,
    warn: (message, details) => logger.warn(details, message),
  });
  const tokenService = createTokenService({
    store: tokenRepository,
    invalidations,
    retirements: producers.retirements,
    events: tokenWebhooks({
      raiser: webhookRaiser,
      clock,
      expiringWindowMs: config.ROOMKEY_WEBHOOK_TOKEN_EXPIRING_MS,
      announceExpiring: (environment, id, at) => webhookRepository.announce(environment, "token.expiring", id, at),
    }),
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
  // Diff and promotion between environments: secrets compared by a fingerprint under a key of its own.
  const integrationPromotion = createIntegrationPromotion({
    store: integrationRepository,
    keys: { dataKey: (name) => directory.dataKey(name) },
    destinations: outbound,
    environments: directory,
    // Fingerprints are compared within one call, never stored: any configured key would do; the current one is used.
    fingerprintKey: derivePurposeKey(currentMasterKey, "integration-fingerprints"),
    clock,
    warn: (message, details) => logger.warn(details, message),
  });

  // Every webhook delivery goes through a guard of its own: the webhook timeout, a small answer cap.
  const webhookOutbound = createOutboundHttp({
    allow: config.ROOMKEY_OUTBOUND_ALLOW,
    timeoutMs: config.ROOMKEY_WEBHOOK_TIMEOUT_MS,
    maxResponseBytes: 4 * 1024,
    resolve: seams.resolveHost ?? queryingResolver(),
  });
  const webhookService = createWebhookService({
    store: webhookRepository,
    queue: producers.webhooks,
    keys: directory,
    destinations: webhookOutbound,
    allowHttp: config.ROOMKEY_WEBHOOK_ALLOW_HTTP,
    defaultOverlapMs: config.ROOMKEY_WEBHOOK_SECRET_OVERLAP_MS,
    attempts: config.ROOMKEY_WEBHOOK_ATTEMPTS,
    clock,
  });

  // Accounts: handshakes on the environment's queue, status changes over pub/sub and as webhook events.
  const accountWatch = createAccountWatch({ bus, maxBacklog: 1_000 });
  const accountHooks = accountWebhooks(webhookRaiser);
  const accountEvents: typeof accountWatch.events = {
    async publish(environment, event) {
      // All three, whatever the others did: pub/sub is best effort, the webhook raise keeps trying on its
      // own, and a session left unspent by a lost event is still refused once its account is ACTIVE.
      const [published, , spent] = await Promise.allSettled([
        accountWatch.events.publish(environment, event),
        accountHooks(environment, event),
        connectSessions.accountChanged(environment, event),
      ]);
      if (spent.status === "rejected")
        logger.warn({ err: spent.reason, environment }, "could not mark a connect session spent");
      if (published.status === "rejected") throw published.reason;
    },
  };
  const accountSettings = async (name: string) => {
    const settings = effectiveSettings((await directory.require(name)).settings);
    return {
      refreshMarginMs: settings.oauthRefreshMarginMs,
      refreshTokenKeepaliveMs: settings.refreshTokenKeepaliveMs,
    };
  };
  // This process's Prometheus metrics: fed by the edge, the workers and provider calls; the rest read when scraped.
  const metrics = createMetrics({
    environments: () => directory.names(),
    hasEnvironment: (name) => directory.has(name),
    queueCounts: (environment, kind) => queues.queue(environment, kind).getJobCounts(...queueStates),
    backends: () => ({ mongodb: !mongoGate.isDown(), redis: redis.status === "ready" }),
    tokenCache: () => verifier.cacheStats(),
    dataKeys: () => dataKeysByMasterKey(keyring, directory.list()),
  });
  const providerOptions = {
    send: outbound.send,
    maxRetryAfterMs: maxProviderRetryAfterMs,
    observe: metrics.providerCall,
  };
  const oauthClient = createHttpOAuthClient(providerOptions);
  const accountService = createAccountService({
    store: accountRepository,
    integrations: integrationRepository,
    keys: directory,
    events: accountEvents,
    handshakes: producers.handshakes,
    refreshes: producers.refreshes,
    revocations: producers.revocations,
    refreshMarginMs: async (name) => (await accountSettings(name)).refreshMarginMs,
    refreshWaitMs: Math.max(15_000, 2 * config.ROOMKEY_PROVIDER_TIMEOUT_MS),
    clock,
    warn: (message, details) => logger.warn(details, message),
  });

  // Connect sessions: verified like tokens (a cache, invalidated on every replica through pub/sub).
  const sessionVerifier = createSessionVerifier({
    store: connectSessionRepository,
    environmentExists,
    clock,
    ...credentialCache,
  });
  /** The HTTP port's public base URL: configured, or (local runs) learnt once the port listens. */
  const publicUrl = { value: config.ROOMKEY_PUBLIC_URL };
  const connectSessions = createConnectSessionService({
    store: connectSessionRepository,
    accounts: accountService,
    integrations: integrationRepository,
    invalidations: {
      async publish(environment, hash) {
        sessionVerifier.invalidate(hash);
        return bus.publish(connectSessionsChannel, { environment, hash });
      },
    },
    publicUrl: () => publicUrl.value,
    environmentKnown: (name) => directory.has(name),
    clock,
    warn: (message, details) => logger.warn(details, message),
  });

  // The audit log of each environment: calls (the edge), refusals, the worker's state changes.
  const auditRecorder = createAuditRecorder({
    store: auditRepository,
    exists: (name) => directory.has(name) || environmentExists(name),
    clock,
    maxBuffered: auditPolicy.maxBufferedEntries,
    maxBatch: auditPolicy.maxBatchEntries,
    maxBufferedPerEnvironment: auditPolicy.maxBufferedPerEnvironment,
    writeTimeoutMs: auditPolicy.writeTimeoutMs,
    finalFlushMs: auditPolicy.finalFlushMs,
    warn: (message, details) => logger.warn(details, message),
    observe: metrics.audit,
  });
  const auditService = createAuditService({
    store: auditRepository,
    retentionMs: async (name) => effectiveSettings((await directory.require(name)).settings).auditRetentionMs,
    clock,
  });

  // Page tokens carry a MAC under a key every replica derives alike, bound to the environment's incarnation.
  // Signed under the current master key; taken under any configured one (replicas switch keys one by one).
  const pages = createPageTokens({
    key: derivePurposeKey(currentMasterKey, "page-tokens"),
    acceptedKeys: otherMasterKeys.map((key) => derivePurposeKey(key, "page-tokens")),
    incarnation: async (name) => String((await directory.require(name)).createTime.getTime()),
  });

  // Master-key rotation: the rewrap jobs, their sweep (workers) and GetMasterKeyStatus / RewrapDataKeys.
  const masterKeyRotation = createMasterKeyRotation({
    store: environments,
    keyring,
    queue: producers.rewraps,
    events: environmentEvents,
  });

  return {
    control,
    keyring,
    masterKeyRotation,
    environments,
    environmentDatabases,
    databases,
    tokenRepository,
    accountRepository,
    integrationRepository,
    webhookRepository,
    webhookRaiser,
    webhookOutbound,
    webhookService,
    accountEvents,
    accountHooks,
    queues,
    bus,
    directory,
    environmentService,
    usage,
    verifier,
    invalidations,
    producers,
    jobs,
    tokenService,
    outbound,
    integrationService,
    integrationPromotion,
    accountWatch,
    accountSettings,
    providerOptions,
    oauthClient,
    accountService,
    connectSessionRepository,
    sessionVerifier,
    connectSessions,
    auditRecorder,
    auditService,
    publicUrl,
    pages,
    metrics,
  };
}
