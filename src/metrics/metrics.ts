/**
 * roomkey's Prometheus metrics: one registry per process (tests run several
 * in one), the instruments the API and the workers feed, and the gauges read
 * when scraped (queue depth, the token cache, backend reachability).
 *
 * Labels are bounded by construction: method names, status codes and reasons
 * come from the contract; environment names only from the environments this
 * process knows to exist (anything else is "other"); never a token id, an
 * account id, a secret or a URL.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { ProviderCallKind, ProviderCallObserver } from "../providers/provider-call.js";
import { type QueueKind, queueKinds } from "../queue/queue-names.js";

/** gRPC's canonical code names (UNAUTHENTICATED, not Unauthenticated): what operators know from grpc-go and Envoy. */
const codeNames: ReadonlyMap<Code, string> = new Map(
  Object.entries(Code)
    .filter((entry): entry is [string, Code] => typeof entry[1] === "number")
    .map(([name, code]) => [code, name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()]),
);

/** The label every environment name not known to exist here becomes: callers cannot mint label values. */
export const otherEnvironment = "other";

/** The job states whose counts each environment's queues report. */
export const queueStates = ["waiting", "active", "delayed", "failed"] as const;
type QueueState = (typeof queueStates)[number];

/** What the scrape-time gauges read. */
export interface MetricsSources {
  /** The environments this process knows to exist, without I/O. */
  environments(): string[];
  /** Whether this process knows the environment to exist, without I/O. */
  hasEnvironment(name: string): boolean;
  /** Job counts of one environment's queue. */
  queueCounts(environment: string, kind: QueueKind): Promise<Partial<Record<QueueState, number>>>;
  /** Whether MongoDB and Redis answer, as this process sees them now. */
  backends(): Record<"mongodb" | "redis", boolean>;
  /** The token cache's counts since start (API role). */
  tokenCache?(): { hits: number; negativeHits: number; misses: number };
  /**
   * Data keys of the environments this process knows, by the master key that wraps them: its configured
   * id (every configured key, 0 included), or its fingerprint for a key not configured here. Without I/O.
   */
  dataKeys?(): Record<string, number>;
}

export interface MetricsOptions {
  /** Labels on every series, e.g. the role. */
  defaultLabels?: Record<string, string>;
  /** How long one scrape's queue counts may take before they are left out. */
  queueCountTimeoutMs?: number;
  /** Queue counts are read at most this often; scrapes in between get the last reading. */
  queueCountEveryMs?: number;
}

/** Seconds buckets from 1 ms to 10 s: unary calls, and jobs that call providers. */
const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type Metrics = ReturnType<typeof createMetrics>;

/** What a worker process tells its metrics (attached once its workers start). */
export interface WorkerSource {
  /** The environments this process serves: their queues' job counts are reported here, and only here. */
  served(): string[];
  /** Queues that have a BullMQ worker (and a blocking Redis connection) in this process now. */
  liveQueues(): number;
}

export function createMetrics(sources: MetricsSources, options: MetricsOptions = {}) {
  const registry = new Registry();
  let workers: WorkerSource | undefined;
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  collectDefaultMetrics({ register: registry });
  const knownEnvironment = (name: string) => (sources.hasEnvironment(name) ? name : otherEnvironment);

  const rpcHandled = new Counter({
    name: "roomkey_rpc_handled_total",
    help: "Calls of roomkey's three services, by method and status code (streams counted when they end).",
    labelNames: ["service", "method", "code"],
    registers: [registry],
  });
  const rpcSeconds = new Histogram({
    name: "roomkey_rpc_duration_seconds",
    help: "Time from admission to the answer of unary calls, by method and status code.",
    labelNames: ["service", "method", "code"],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: "roomkey_auth_failures_total",
    help: "Calls refused for their credentials, by ErrorReason (CREDENTIALS_MISSING, CREDENTIALS_INVALID, TOKEN_REVOKED, TOKEN_WRONG_ENVIRONMENT, TOO_MANY_FAILED_AUTHENTICATIONS, ...).",
    labelNames: ["reason"],
    registers: [registry],
  });
  const wrongEnvironment = new Counter({
    name: "roomkey_auth_wrong_environment_total",
    help: `A well-formed token (checksum right) of one environment presented to another; not looked up, so anyone can send one. Environments not known here are "${otherEnvironment}".`,
    labelNames: ["requested_environment", "token_environment"],
    registers: [registry],
  });
  const jobSeconds = new Histogram({
    name: "roomkey_job_duration_seconds",
    help: "Time a worker spent on a job, by queue, job name and outcome (completed, failed).",
    labelNames: ["queue", "job", "outcome"],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const handshakes = new Counter({
    name: "roomkey_handshakes_total",
    help: "Account handshakes that ended, by environment and how the account ended (active, failed).",
    labelNames: ["environment", "outcome"],
    registers: [registry],
  });
  const webhookAttempts = new Counter({
    name: "roomkey_webhook_attempts_total",
    help: "Webhook delivery attempts, by environment and outcome (succeeded, failed: a non-2xx answer, no answer or a refused address).",
    labelNames: ["environment", "outcome"],
    registers: [registry],
  });
  const webhookSeconds = new Histogram({
    name: "roomkey_webhook_attempt_duration_seconds",
    help: "Time a webhook delivery attempt took, from sending to the end of the answer (or the timeout).",
    labelNames: ["outcome"],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const endpointsDisabled = new Counter({
    name: "roomkey_webhook_endpoints_disabled_total",
    help: "Webhook endpoints roomkey disabled because every delivery failed for the configured time.",
    labelNames: ["environment"],
    registers: [registry],
  });
  const auditDropped = new Counter({
    name: "roomkey_audit_entries_dropped_total",
    help: "Audit entries not written because the in-memory buffer (refusals, failed writes waiting for a retry) was full.",
    labelNames: ["reason"],
    registers: [registry],
  });
  const auditWriteFailures = new Counter({
    name: "roomkey_audit_write_failures_total",
    help: "Audit entries whose write failed; they wait in the buffer for the next flush (see roomkey_audit_entries_dropped_total).",
    registers: [registry],
  });
  const providerCalls = new Counter({
    name: "roomkey_provider_calls_total",
    help: "Calls to providers (credential checks, OAuth token exchanges and refreshes), by outcome.",
    labelNames: ["call", "outcome"],
    registers: [registry],
  });
  const providerSeconds = new Histogram({
    name: "roomkey_provider_call_duration_seconds",
    help: "Time a provider call took, by call and outcome.",
    labelNames: ["call", "outcome"],
    buckets: latencyBuckets,
    registers: [registry],
  });

  const queueCountTimeoutMs = options.queueCountTimeoutMs ?? 2_000;
  const queueCountEveryMs = options.queueCountEveryMs ?? 1_000;
  // One reading at a time, shared by concurrent scrapes, and at most one per `queueCountEveryMs`:
  // scraping in a loop (the port asks for no credentials) costs Redis a bounded rate of reads.
  let counting: Promise<void> | undefined;
  let countedAt = Number.NEGATIVE_INFINITY;
  const queueJobs: Gauge<"environment" | "queue" | "state"> = new Gauge({
    name: "roomkey_queue_jobs",
    help: "Jobs on each environment's queues, by state (waiting, active, delayed, failed), reported by the worker process that serves the environment: aggregate with max or sum.",
    labelNames: ["environment", "queue", "state"],
    registers: [registry],
    collect() {
      if (counting) return counting;
      if (performance.now() - countedAt < queueCountEveryMs) return;
      counting = countQueues().finally(() => {
        countedAt = performance.now();
        counting = undefined;
      });
      return counting;
    },
  });
  async function countQueues(): Promise<void> {
    // Redis not answering: BullMQ waits for a first connection, so counts would only wait out the timeout.
    if (!sources.backends().redis) {
      queueJobs.reset();
      return;
    }
    const rows: { environment: string; queue: QueueKind; counts: Partial<Record<QueueState, number>> }[] = [];
    const all = (workers?.served() ?? []).flatMap((environment) =>
      queueKinds.map(async (queue) => {
        rows.push({ environment, queue, counts: await sources.queueCounts(environment, queue) });
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, queueCountTimeoutMs);
    });
    await Promise.race([Promise.allSettled(all), timedOut]);
    clearTimeout(timer);
    queueJobs.reset();
    for (const { environment, queue, counts } of rows) {
      for (const state of queueStates) queueJobs.set({ environment, queue, state }, counts[state] ?? 0);
    }
  }

  new Gauge({
    name: "roomkey_backend_up",
    help: "1 when the backend answers as this process sees it (mongodb, redis), else 0.",
    labelNames: ["backend"],
    registers: [registry],
    collect() {
      for (const [backend, up] of Object.entries(sources.backends())) this.set({ backend }, up ? 1 : 0);
    },
  });
  new Gauge({
    name: "roomkey_environments",
    help: "Environments this process knows to be active.",
    registers: [registry],
    collect() {
      this.set(sources.environments().length);
    },
  });
  new Gauge({
    name: "roomkey_worker_environments",
    help: "Environments this worker process serves (its share of the fleet's).",
    registers: [registry],
    collect() {
      this.set(workers?.served().length ?? 0);
    },
  });
  new Gauge({
    name: "roomkey_worker_live_queues",
    help: "Queues with a running BullMQ worker in this process: the others are idle and cost no Redis connection.",
    registers: [registry],
    collect() {
      this.set(workers?.liveQueues() ?? 0);
    },
  });
  if (sources.dataKeys) {
    const read = sources.dataKeys;
    new Gauge({
      name: "roomkey_data_keys",
      help: "Environments' data keys by the master key that wraps them (its id, or its fingerprint when not configured here): when every key but the current one shows 0, the others can be removed.",
      labelNames: ["master_key"],
      registers: [registry],
      collect() {
        // A key removed from the configuration, or no longer wrapping anything, leaves the series.
        this.reset();
        for (const [masterKey, count] of Object.entries(read())) this.set({ master_key: masterKey }, count);
      },
    });
  }
  if (sources.tokenCache) {
    const read = sources.tokenCache;
    // Counts kept by the verifier itself (no prom-client on the hot path), copied when scraped.
    const seen = { hits: 0, negativeHits: 0, misses: 0 };
    new Counter({
      name: "roomkey_token_cache_lookups_total",
      help: "Token verifications by where the answer came from: hit (a cached token), negative_hit (a hash known to match none), miss (a database lookup).",
      labelNames: ["result"],
      registers: [registry],
      collect() {
        const now = read();
        this.inc({ result: "hit" }, now.hits - seen.hits);
        this.inc({ result: "negative_hit" }, now.negativeHits - seen.negativeHits);
        this.inc({ result: "miss" }, now.misses - seen.misses);
        Object.assign(seen, now);
      },
    });
  }

  // Each method and code's series, made once: a call costs two increments, not two label lookups.
  type RpcSeries = { handled: Counter.Internal; seconds?: Histogram.Internal<string> };
  const rpcSeriesByMethod = new Map<DescMethod, Map<number, RpcSeries>>();
  function rpcSeries(method: DescMethod, code: number): RpcSeries {
    let byCode = rpcSeriesByMethod.get(method);
    if (!byCode) {
      byCode = new Map();
      rpcSeriesByMethod.set(method, byCode);
    }
    let series = byCode.get(code);
    if (!series) {
      const labels = {
        service: method.parent.typeName,
        method: method.name,
        code: code === 0 ? "OK" : (codeNames.get(code) ?? "UNKNOWN"),
      };
      series = {
        handled: rpcHandled.labels(labels),
        ...(method.methodKind === "unary" ? { seconds: rpcSeconds.labels(labels) } : {}),
      };
      byCode.set(code, series);
    }
    return series;
  }

  const providerObserver: ProviderCallObserver = (call: ProviderCallKind, outcome, seconds) => {
    providerCalls.inc({ call, outcome });
    providerSeconds.observe({ call, outcome }, seconds);
  };

  return {
    registry,
    /** The worker stage's view: served environments (whose queue counts this process reports) and live queues. */
    attachWorkers(source: WorkerSource): void {
      workers = source;
    },
    /** A call of one of the three services ended; `code` undefined (or 0) is OK. Streams count but are not timed. */
    call(method: DescMethod, code: Code | undefined, seconds: number): void {
      const series = rpcSeries(method, code ?? 0);
      series.handled.inc();
      series.seconds?.observe(seconds);
    },
    /** A call refused for its credentials; a token of another environment also counts by both environments. */
    authenticationFailed(reason: string, wrong?: { requested: string; token: string }): void {
      authFailures.inc({ reason });
      if (wrong) {
        wrongEnvironment.inc({
          requested_environment: knownEnvironment(wrong.requested),
          token_environment: knownEnvironment(wrong.token),
        });
      }
    },
    /** A job ended on a worker of this process. */
    job(queue: QueueKind, job: string, outcome: "completed" | "failed", seconds: number): void {
      jobSeconds.observe({ queue, job, outcome }, seconds);
    },
    /** A handshake ended with the account `active` or `failed`. */
    handshake(environment: string, outcome: "active" | "failed"): void {
      handshakes.inc({ environment: knownEnvironment(environment), outcome });
    },
    /** A webhook delivery attempt ended. */
    webhookAttempt(environment: string, outcome: "succeeded" | "failed", seconds: number): void {
      webhookAttempts.inc({ environment: knownEnvironment(environment), outcome });
      webhookSeconds.observe({ outcome }, seconds);
    },
    /** roomkey disabled a webhook endpoint that kept failing. */
    endpointDisabled(environment: string): void {
      endpointsDisabled.inc({ environment: knownEnvironment(environment) });
    },
    /** What the audit recorder could not write. */
    audit: {
      dropped(reason: "buffer_full", count: number): void {
        auditDropped.inc({ reason }, count);
      },
      writeFailed(count: number): void {
        auditWriteFailures.inc(count);
      },
    },
    providerCall: providerObserver,
    /** The text exposition format and its content type. */
    async scrape(): Promise<{ contentType: string; body: string }> {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
