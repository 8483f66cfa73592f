import { z } from "zod";
import { isEnvironmentName } from "./domain/environments/environment-name.js";
import { isAllowEntry } from "./providers/address-policy.js";
import { parseClusterNode } from "./queue/redis-client.js";

/** A TCP port; 0 asks the OS for a free one. An empty value is an error, not 0. */
const port = z
  .string()
  .regex(/^\d{1,5}$/, "must be a port number (0-65535)")
  .transform(Number)
  .refine((n) => n <= 65535, "must be a port number (0-65535)");

/** A comma-separated setting's entries, trimmed, empty ones dropped. */
function commaList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const masterKeyPattern = /^[A-Za-z0-9+/]{43}=$/;
const masterKeyIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

const schema = z.object({
  MONGODB_URL: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "must be a mongodb:// or mongodb+srv:// URL")
    .default("mongodb://127.0.0.1:27017/"),
  /**
   * Write concern of every write (docs/mongodb-at-scale.md): `majority`, which no failover rolls back, or a
   * number of members. Never 0: who won a version-checked write is told by an acknowledged insert's duplicate key.
   */
  ROOMKEY_MONGO_WRITE_CONCERN: z
    .string()
    .regex(/^(majority|[1-9][0-9]?)$/, "must be majority or a number of members from 1 to 50")
    .transform((value): "majority" | number => (value === "majority" ? "majority" : Number(value)))
    .refine((w) => w === "majority" || w <= 50, "must be majority or a number of members from 1 to 50")
    .default("majority"),
  /** How long a write waits for its write concern; then it fails, although it may have been applied. */
  ROOMKEY_MONGO_WRITE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** A write is acknowledged only once it is in the on-disk journal of the members its write concern counts. */
  ROOMKEY_MONGO_JOURNAL: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  /**
   * Read concern of every read: `majority` (only what a majority holds, which no failover rolls back) or `local`
   * (the primary's latest, which may include a write that is rolled back later). Reads go to the primary only.
   */
  ROOMKEY_MONGO_READ_CONCERN: z.enum(["majority", "local"]).default("majority"),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
    .default("redis://127.0.0.1:6379"),
  /**
   * A Redis Cluster's seed nodes, `host:port` separated by commas: set, roomkey talks to the cluster
   * (REDIS_URL then gives only the username, password and TLS, `rediss:`); empty, to REDIS_URL's server.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .default("")
    .transform(commaList)
    .refine((nodes) => nodes.every((node) => parseClusterNode(node) !== undefined), {
      message: "must be host:port pairs separated by commas, such as redis-1:6379,redis-2:6379",
    }),
  ROOMKEY_ADMIN_KEY: z
    .string()
    .min(32, "must be at least 32 characters")
    .max(512)
    .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces"),
  /** One master key (its id is `default`); or ROOMKEY_MASTER_KEYS, never both. Empty: not set. */
  ROOMKEY_MASTER_KEY: z
    .string()
    .optional()
    .transform((value) => value || undefined)
    .refine((value) => value === undefined || masterKeyPattern.test(value), {
      message: "must be 32 bytes in base64 (openssl rand -base64 32)",
    }),
  /**
   * Several master keys, `<id>:<base64 of 32 bytes>` separated by commas: the current one (ROOMKEY_MASTER_KEY_ID)
   * wraps new data keys, the others stay readable until the rewrap job has moved every data key off them.
   */
  ROOMKEY_MASTER_KEYS: z
    .string()
    .default("")
    .transform(commaList)
    .superRefine((entries, context) => {
      for (const [index, entry] of entries.entries()) {
        const colon = entry.indexOf(":");
        const id = colon < 0 ? entry : entry.slice(0, colon);
        // Never the entry itself in a message: it holds a key.
        if (colon < 0 || !masterKeyIdPattern.test(id)) {
          context.addIssue({
            code: "custom",
            message: `entry ${index + 1} must be <id>:<base64 of 32 bytes>, the id matching ${masterKeyIdPattern.source}`,
          });
        } else if (!masterKeyPattern.test(entry.slice(colon + 1))) {
          context.addIssue({
            code: "custom",
            message: `the key of "${id}" must be 32 bytes in base64 (openssl rand -base64 32)`,
          });
        }
      }
    })
    .transform((entries) =>
      entries.map((entry) => {
        const colon = entry.indexOf(":");
        return { id: entry.slice(0, colon), key: entry.slice(colon + 1) };
      }),
    ),
  /** The id of the current master key among ROOMKEY_MASTER_KEYS; required when it lists more than one. */
  ROOMKEY_MASTER_KEY_ID: z
    .string()
    .optional()
    .transform((value) => value || undefined)
    .refine((value) => value === undefined || masterKeyIdPattern.test(value), {
      message: `must match ${masterKeyIdPattern.source}`,
    }),
  ROOMKEY_HOST: z.string().min(1).default("0.0.0.0"),
  ROOMKEY_GRPC_PORT: port.default(50051),
  ROOMKEY_HTTP_PORT: port.default(8080),
  /** Prometheus metrics (GET /metrics) on a port of their own, in every role; `off`: none. Unauthenticated. */
  ROOMKEY_METRICS_PORT: z.union([z.literal("off"), port]).default(9464),
  /** Bull Board at /admin/queues on the HTTP port, behind the admin key: read-only, retry-clean (retry and remove jobs) or off. */
  ROOMKEY_DASHBOARD: z.enum(["off", "read-only", "retry-clean"]).default("read-only"),
  // No "_": then no deployment's names can start with another's `<prefix>_env_`.
  ROOMKEY_DB_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9]{0,15}$/, "must match ^[a-z][a-z0-9]{0,15}$")
    .default("roomkey"),
  ROOMKEY_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}-]{1,32}$/, "must be 1-32 characters of A-Z a-z 0-9 _ - { }")
    .default("roomkey"),
  ROOMKEY_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  ROOMKEY_DEFAULT_ENVIRONMENTS: z
    .string()
    .default("development,staging,production")
    .transform(commaList)
    .refine((names) => names.every(isEnvironmentName), "must be environment names separated by commas"),
  ROOMKEY_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  ROOMKEY_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  ROOMKEY_MAX_METADATA_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024)
    .default(16 * 1024),
  /** Calls one HTTP/2 connection to the gRPC port may have open at once. */
  ROOMKEY_MAX_CONCURRENT_STREAMS: z.coerce.number().int().min(1).max(10_000).default(128),
  /** Failed authentications one address may make per minute before it is throttled; 0: no throttle. */
  ROOMKEY_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(600),
  /** Failed authentications one address may make at once before the per-minute rate applies. */
  ROOMKEY_AUTH_FAILURE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(100),
  ROOMKEY_WORKER_HEARTBEAT_FILE: z.string().optional(),
  /** How long a replica trusts a cached token when no invalidation arrives (pub/sub down). */
  ROOMKEY_TOKEN_CACHE_TTL_MS: z.coerce.number().int().min(100).max(30_000).default(30_000),
  /**
   * The public base URL of the HTTP port, as browsers and OAuth providers reach it
   * (`https://roomkey.example.com`): connect URLs and the OAuth callback
   * (`<this>/connect/oauth/callback`) are made from it. Empty: `http://127.0.0.1:<HTTP port>`, for local runs.
   */
  ROOMKEY_PUBLIC_URL: z
    .string()
    .default("")
    .refine((value) => value === "" || /^https?:\/\/[^/?#\s]+$/.test(value.replace(/\/$/, "")), {
      message: "must be an http(s) URL of scheme, host and port only, such as https://roomkey.example.com",
    })
    .transform((value) => value.replace(/\/$/, "")),
  /** How often last-used times are written. */
  ROOMKEY_USAGE_FLUSH_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  ROOMKEY_ENVIRONMENT_REFRESH_MS: z.coerce.number().int().min(100).max(60_000).default(2_000),
  /** A job's lock; a dead worker's jobs run again within about twice this. */
  ROOMKEY_JOB_LOCK_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  /** How often each environment's connecting sweep runs (accounts CONNECTING without a live job). */
  ROOMKEY_HANDSHAKE_SWEEP_MS: z.coerce.number().int().min(500).max(3_600_000).default(30_000),
  /**
   * A worker process's lease in the fleet: one that stops renewing it (killed, cut off) has its
   * environments taken by the others within this; renewed three times per lease, which also checks
   * whether Redis lost its data.
   */
  ROOMKEY_WORKER_LEASE_MS: z.coerce.number().int().min(300).max(600_000).default(6_000),
  /** A queue's BullMQ worker with no job for this long is closed; the wake index starts it again for the next. */
  ROOMKEY_WORKER_IDLE_MS: z.coerce.number().int().min(500).max(3_600_000).default(10_000),
  /** How often each environment's OAuth refresh sweep runs. */
  ROOMKEY_REFRESH_SWEEP_MS: z.coerce.number().int().min(500).max(3_600_000).default(60_000),
  /** How long one provider request (credential check, token exchange) may take. */
  ROOMKEY_PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /**
   * Hostnames, IP addresses and CIDR blocks that provider calls may reach
   * although the outbound guard refuses them (loopback, private, link-local,
   * metadata). For local development and tests; empty in production.
   */
  ROOMKEY_OUTBOUND_ALLOW: z
    .string()
    .default("")
    .transform(commaList)
    .refine(
      (entries) => entries.every(isAllowEntry),
      "must be hostnames, IP addresses or CIDR blocks (10.0.0.0/8, fd00::/8) separated by commas",
    ),
  /** Base delay of handshake retries (doubling, up to a minute). */
  ROOMKEY_PROVIDER_RETRY_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
  /** Webhook endpoints may be plain http:// URLs (local development and tests); https only otherwise. */
  ROOMKEY_WEBHOOK_ALLOW_HTTP: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"),
  /** How long one webhook delivery may take, answer included. */
  ROOMKEY_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  /** Attempts of one delivery, the first included (see retry-policy.ts for the schedule). */
  ROOMKEY_WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(11),
  /** The first retry's delay; each next one is 4 times longer, up to ROOMKEY_WEBHOOK_RETRY_MAX_MS. */
  ROOMKEY_WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(5_000),
  ROOMKEY_WEBHOOK_RETRY_MAX_MS: z.coerce
    .number()
    .int()
    .min(10)
    .max(7 * 86_400_000)
    .default(8 * 3_600_000),
  /** An endpoint whose deliveries have all failed for this long is disabled. */
  ROOMKEY_WEBHOOK_DISABLE_AFTER_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(90 * 86_400_000)
    .default(5 * 86_400_000),
  /** After a secret rotation, deliveries are also signed with the old secret for this long (unless the call says). */
  ROOMKEY_WEBHOOK_SECRET_OVERLAP_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(7 * 86_400_000)
    .default(86_400_000),
  /** `token.expiring` is sent this long before a token expires. */
  ROOMKEY_WEBHOOK_TOKEN_EXPIRING_MS: z.coerce
    .number()
    .int()
    .min(60_000)
    .max(365 * 86_400_000)
    .default(7 * 86_400_000),
  /** Events and their delivery log are purged this long after the event (by a job every tenth of it, at most hourly). */
  ROOMKEY_WEBHOOK_RETENTION_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(365 * 86_400_000)
    .default(30 * 86_400_000),
  /** How often each environment's webhook sweep runs (lost jobs, token.expiring, purge). */
  ROOMKEY_WEBHOOK_SWEEP_MS: z.coerce.number().int().min(500).max(3_600_000).default(60_000),
});

/** Validated process configuration. */
export type Config = z.output<typeof schema>;

/** A bad configuration value: the message names every variable at fault. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * What the ROOMKEY_MONGO_* settings own in MONGODB_URL's options. The driver merges a URL option and the
 * client's own unevenly (driver 7.9: the URL's `journal=false` and `readConcernLevel=local` beat the client's,
 * its `w` does not), so a URL may repeat these but never contradict them.
 */
const mongoUrlOwned: Record<string, { setting: keyof Config; value: (config: Config) => string }> = {
  w: { setting: "ROOMKEY_MONGO_WRITE_CONCERN", value: (c) => String(c.ROOMKEY_MONGO_WRITE_CONCERN) },
  journal: { setting: "ROOMKEY_MONGO_JOURNAL", value: (c) => String(c.ROOMKEY_MONGO_JOURNAL) },
  j: { setting: "ROOMKEY_MONGO_JOURNAL", value: (c) => String(c.ROOMKEY_MONGO_JOURNAL) },
  fsync: { setting: "ROOMKEY_MONGO_JOURNAL", value: (c) => String(c.ROOMKEY_MONGO_JOURNAL) },
  wtimeoutms: { setting: "ROOMKEY_MONGO_WRITE_TIMEOUT_MS", value: (c) => String(c.ROOMKEY_MONGO_WRITE_TIMEOUT_MS) },
  wtimeout: { setting: "ROOMKEY_MONGO_WRITE_TIMEOUT_MS", value: (c) => String(c.ROOMKEY_MONGO_WRITE_TIMEOUT_MS) },
  readconcernlevel: { setting: "ROOMKEY_MONGO_READ_CONCERN", value: (c) => c.ROOMKEY_MONGO_READ_CONCERN },
};

/** Reads that may go elsewhere than the primary: none (see docs/mongodb-at-scale.md), so these options cannot be met. */
const secondaryReadOptions = new Set(["readpreference", "readpreferencetags", "maxstalenessseconds"]);

/** Settings that parse one by one but not together; each line names the variable at fault. */
function mongoConflicts(config: Config): string[] {
  const lines: string[] = [];
  if (typeof config.ROOMKEY_MONGO_WRITE_CONCERN === "number" && config.ROOMKEY_MONGO_READ_CONCERN === "majority") {
    lines.push(
      "ROOMKEY_MONGO_WRITE_CONCERN: a number needs ROOMKEY_MONGO_READ_CONCERN=local: a majority read may not yet see a write fewer than a majority acknowledged (a revoked token would read as valid)",
    );
  }
  const query = config.MONGODB_URL.includes("?") ? config.MONGODB_URL.slice(config.MONGODB_URL.indexOf("?") + 1) : "";
  for (const [key, value] of new URLSearchParams(query)) {
    const name = key.toLowerCase();
    const owned = mongoUrlOwned[name];
    if (owned && value.toLowerCase() !== owned.value(config).toLowerCase()) {
      lines.push(
        `MONGODB_URL: sets ${key}=${value} but ${owned.setting} is ${owned.value(config)}: remove ${key} from the URL or set ${owned.setting}`,
      );
    }
    if (secondaryReadOptions.has(name) && !(name === "readpreference" && value.toLowerCase() === "primary")) {
      lines.push(
        `MONGODB_URL: sets ${key}=${value} but roomkey reads from the primary only (docs/mongodb-at-scale.md)`,
      );
    }
  }
  return lines;
}

/** One configured master key: its id and its 32 bytes. */
export interface ConfiguredMasterKey {
  id: string;
  key: Buffer;
}

/** The master keys of a configuration: the current one first. */
export interface MasterKeySettings {
  currentId: string;
  keys: ConfiguredMasterKey[];
}

/** The id ROOMKEY_MASTER_KEY's one key goes by. */
export const defaultMasterKeyId = "default";

/**
 * The master keys the configuration names, or the lines saying what is wrong with them (naming the
 * variables, never a key).
 */
export function masterKeySettings(config: Config): MasterKeySettings | { problems: string[] } {
  const { ROOMKEY_MASTER_KEY: single, ROOMKEY_MASTER_KEYS: several, ROOMKEY_MASTER_KEY_ID: currentId } = config;
  if (single !== undefined && several.length > 0) {
    return { problems: ["ROOMKEY_MASTER_KEY and ROOMKEY_MASTER_KEYS are both set: set one of them"] };
  }
  if (single !== undefined) {
    if (currentId !== undefined && currentId !== defaultMasterKeyId) {
      return {
        problems: [
          `ROOMKEY_MASTER_KEY_ID: is "${currentId}" but ROOMKEY_MASTER_KEY's key is "${defaultMasterKeyId}": use ROOMKEY_MASTER_KEYS to name keys`,
        ],
      };
    }
    return { currentId: defaultMasterKeyId, keys: [{ id: defaultMasterKeyId, key: Buffer.from(single, "base64") }] };
  }
  if (several.length === 0) return { problems: ["ROOMKEY_MASTER_KEY: is required (or ROOMKEY_MASTER_KEYS)"] };
  const problems: string[] = [];
  const ids = several.map((entry) => entry.id);
  const repeatedIds = ids.filter((id, index) => ids.indexOf(id) !== index);
  if (repeatedIds.length > 0) problems.push(`ROOMKEY_MASTER_KEYS: the id "${repeatedIds[0]}" is given twice`);
  const keys = several.map((entry) => Buffer.from(entry.key, "base64").toString("hex"));
  const repeatedKey = keys.findIndex((key, index) => keys.indexOf(key) !== index);
  if (repeatedKey >= 0) {
    problems.push(
      `ROOMKEY_MASTER_KEYS: "${ids[repeatedKey]}" has the same key as "${ids[keys.indexOf(keys[repeatedKey] ?? "")]}"`,
    );
  }
  const current = currentId ?? (several.length === 1 ? several[0]?.id : undefined);
  if (current === undefined) {
    problems.push("ROOMKEY_MASTER_KEY_ID: is required when ROOMKEY_MASTER_KEYS lists more than one key");
  } else if (!ids.includes(current)) {
    problems.push(
      `ROOMKEY_MASTER_KEY_ID: "${current}" is not one of the ids in ROOMKEY_MASTER_KEYS (${ids.join(", ")})`,
    );
  }
  if (problems.length > 0 || current === undefined) return { problems };
  const ordered = [...several].sort((a, b) => (a.id === current ? -1 : b.id === current ? 1 : 0));
  return {
    currentId: current,
    keys: ordered.map((entry) => ({ id: entry.id, key: Buffer.from(entry.key, "base64") })),
  };
}

/** The master keys of a configuration `loadConfig` accepted. */
export function masterKeysOf(config: Config): MasterKeySettings {
  const settings = masterKeySettings(config);
  if ("problems" in settings) throw new ConfigError(`invalid configuration:\n  ${settings.problems.join("\n  ")}`);
  return settings;
}

/**
 * Parses the configuration once, from `env` (process.env by default). The only
 * reader of process.env: everything else receives a Config.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path.join(".");
      return `  ${name}: ${issue.code === "invalid_type" && env[name] === undefined ? "is required" : issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const keys = masterKeySettings(parsed.data);
  const conflicts = [...mongoConflicts(parsed.data), ...("problems" in keys ? keys.problems : [])];
  if (conflicts.length > 0) {
    throw new ConfigError(`invalid configuration:\n${conflicts.map((line) => `  ${line}`).join("\n")}`);
  }
  return parsed.data;
}
