import { createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "../clock.js";
import { DecryptionError, open, seal } from "../crypto/envelope.js";
import { parseEnvironmentName } from "../environments/environment-name.js";
import {
  ConcurrentModificationError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  RoomkeyError,
} from "../errors.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import { clientSecretBinding } from "./integration-service.js";
import type { Integration } from "./integrations.js";
import type { DataKeySource, IntegrationStore, OutboundDestinations } from "./ports.js";

/**
 * A field's value as compared and shown: a string, a boolean, a list of
 * strings or a string map. `undefined` is unset, and so is a proto3 zero
 * value (empty string, false, empty list or map): the API cannot tell them
 * apart either.
 */
export type FieldValue = string | boolean | readonly string[] | Readonly<Record<string, string>> | undefined;

/**
 * One field that differs. `from` and `to` are domain values (enums as the
 * domain spells them); a secret's are always undefined: only that it differs
 * (or is set on one side) is ever known outside this module.
 */
export interface FieldDifference {
  field: string;
  from: FieldValue;
  to: FieldValue;
  secret: boolean;
}

export type IntegrationDiffKind = "only_in_from" | "only_in_to" | "different" | "same";

export interface IntegrationDiff {
  name: string;
  kind: IntegrationDiffKind;
  /** Ordered by path. */
  fields: FieldDifference[];
}

export type PromotionAction = "create" | "update" | "unchanged";

export interface IntegrationPromotion {
  name: string;
  action: PromotionAction;
  /** The target's fields that change: `from` the new value (the source's), `to` the target's before. */
  changes: FieldDifference[];
}

export interface PromotionResult {
  from: string;
  to: string;
  dryRun: boolean;
  /** Ordered by name. */
  promotions: IntegrationPromotion[];
}

/**
 * What a (not dry) promotion did, for the source environment's audit log: the
 * edge records the call in the target's. `complete` is false when it stopped
 * half-way (an error after some writes): then `promotions` holds what was
 * written before it stopped. No values, only field paths.
 */
export interface PromotionSummary {
  from: string;
  to: string;
  complete: boolean;
  promotions: { name: string; action: PromotionAction; fields: string[] }[];
}

export interface PromotionRequest {
  from: string;
  /** Exactly one of `names` (non-empty) and `all`. */
  names: readonly string[];
  all: boolean;
  dryRun: boolean;
  /** Paths of `keepableFields`. */
  keep: readonly string[];
}

export interface IntegrationPromotionDeps {
  store: IntegrationStore;
  keys: DataKeySource;
  destinations: OutboundDestinations;
  /** Whether an environment exists (is active): the source must. */
  environments: { find(name: string): Promise<unknown> };
  /**
   * The key of the secrets' fingerprints (HMAC-SHA256): derived from the
   * master key for this purpose only, the same on every replica.
   */
  fingerprintKey: Buffer;
  clock: Clock;
  /** Told after a promotion wrote (or tried to write): see PromotionSummary. Its failure is only warned about. */
  onPromoted?: (summary: PromotionSummary) => Promise<void> | void;
  warn?: (message: string, details: Record<string, unknown>) => void;
}

export type IntegrationPromotionService = ReturnType<typeof createIntegrationPromotion>;

/** DiffIntegrations page sizes: 0 means 100, more than 500 is 500 (the proto says so). */
export const diffPageSizes = { default: 100, max: 500 } as const;

export function diffPageSize(requested: number): number {
  if (requested <= 0) return diffPageSizes.default;
  return Math.min(requested, diffPageSizes.max);
}

/** How many times one integration's write is recomputed after another writer changed it first. */
const maxWriteAttempts = 5;
/** Integrations read at once when promoting by name. */
const readConcurrency = 20;
/** Integrations read per query when walking an environment in name order. */
const listChunk = 100;
/**
 * Names one diff page may look at, as a multiple of its size: with most
 * integrations the same (and skipped), a page ends short at this many, with
 * a token to go on, so one call's reads and decryptions stay bounded.
 */
const scannedPerPageItem = 10;

const secretField = "oauth2.client_secret";

/** A zero value is unset (proto3). */
function present(value: FieldValue): FieldValue {
  if (value === undefined || value === "" || value === false) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value;
  if (typeof value === "object" && Object.keys(value).length === 0) return undefined;
  return value;
}

/**
 * The compared fields, by their path in the Integration message, in path
 * order. Not compared: the name (the key), create and update times, the
 * version, and the legacy `pkce` flag (derived from `disable_pkce`).
 */
const compared: readonly { path: string; read(i: Integration): FieldValue }[] = [
  { path: "auth_type", read: (i) => i.authType },
  { path: "credential_check.account_id_path", read: (i) => i.credentialCheck.accountIdPath },
  { path: "credential_check.account_name_path", read: (i) => i.credentialCheck.accountNamePath },
  { path: "credential_check.method", read: (i) => i.credentialCheck.method },
  { path: "credential_check.parameter_name", read: (i) => i.credentialCheck.parameterName },
  { path: "credential_check.placement", read: (i) => i.credentialCheck.placement },
  { path: "credential_check.url", read: (i) => i.credentialCheck.url },
  { path: "display_name", read: (i) => i.displayName },
  { path: "oauth2.authorization_params", read: (i) => i.oauth2?.authorizationParams },
  { path: "oauth2.authorization_url", read: (i) => i.oauth2?.authorizationUrl },
  { path: "oauth2.client_auth_method", read: (i) => i.oauth2?.clientAuthMethod },
  { path: "oauth2.client_id", read: (i) => i.oauth2?.clientId },
  { path: "oauth2.disable_pkce", read: (i) => i.oauth2?.disablePkce === true },
  { path: "oauth2.issuer", read: (i) => i.oauth2?.issuer },
  { path: "oauth2.revocation_url", read: (i) => i.oauth2?.revocationUrl },
  { path: "oauth2.scope_separator", read: (i) => i.oauth2?.scopeSeparator },
  { path: "oauth2.scopes", read: (i) => i.oauth2?.scopes },
  { path: "oauth2.token_url", read: (i) => i.oauth2?.tokenUrl },
];

/** Every path a FieldDifference can name, in order. */
export const comparedFields: readonly string[] = [...compared.map((f) => f.path), secretField].sort();

type Settings = NonNullable<Integration["oauth2"]>;

/**
 * The fields `keep_target_fields` may name (the proto lists them), and how
 * each is taken from the target. Fields of `oauth2` apply only where the
 * promoted integration is an OAuth 2.0 one.
 */
const keepable: Readonly<Record<string, { oauth2: boolean; copy(target: Integration, into: Integration): void }>> = {
  display_name: {
    oauth2: false,
    copy: (t, into) => {
      into.displayName = t.displayName;
    },
  },
  "oauth2.authorization_url": oauth2Copy((t, into) => {
    into.authorizationUrl = t.authorizationUrl;
  }),
  "oauth2.token_url": oauth2Copy((t, into) => {
    into.tokenUrl = t.tokenUrl;
  }),
  "oauth2.client_id": oauth2Copy((t, into) => {
    into.clientId = t.clientId;
  }),
  "oauth2.client_secret": oauth2Copy((t, into) => {
    if (t.sealedClientSecret === undefined) delete into.sealedClientSecret;
    else into.sealedClientSecret = t.sealedClientSecret;
  }),
  "oauth2.scopes": oauth2Copy((t, into) => {
    into.scopes = [...t.scopes];
  }),
  "oauth2.authorization_params": oauth2Copy((t, into) => {
    into.authorizationParams = { ...t.authorizationParams };
  }),
  "oauth2.issuer": oauth2Copy((t, into) => {
    if (t.issuer === undefined) delete into.issuer;
    else into.issuer = t.issuer;
  }),
  "oauth2.revocation_url": oauth2Copy((t, into) => {
    if (t.revocationUrl === undefined) delete into.revocationUrl;
    else into.revocationUrl = t.revocationUrl;
  }),
};

function oauth2Copy(copy: (target: Settings, into: Settings) => void) {
  return {
    oauth2: true,
    copy(target: Integration, into: Integration) {
      if (target.oauth2 && into.oauth2) copy(target.oauth2, into.oauth2);
    },
  };
}

/** The paths `keep_target_fields` accepts. */
export const keepableFields: readonly string[] = Object.keys(keepable);

/** JSON with object keys sorted, so that equal values render alike. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

function sameValue(a: FieldValue, b: FieldValue): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

/**
 * The source environment, checked before anything is read: a valid name
 * (INVALID_ARGUMENT naming `from_environment`) other than the target
 * (INVALID_ARGUMENT PROMOTION_SAME_ENVIRONMENT).
 */
export function parseSourceEnvironment(raw: string, target: string): string {
  const from = parseEnvironmentName(raw, "from_environment");
  if (from === target) {
    const description = `must name another environment than the call's (${target})`;
    throw new InvalidArgumentError(
      `from_environment: ${description}`,
      [{ field: "from_environment", description }],
      "PROMOTION_SAME_ENVIRONMENT",
    );
  }
  return from;
}

function parseKeep(paths: readonly string[]): string[] {
  for (const path of paths) {
    if (!Object.hasOwn(keepable, path)) {
      const description = `"${path}" cannot be kept; keepable fields: ${keepableFields.join(", ")}`;
      throw new InvalidArgumentError(`keep_target_fields: ${description}`, [
        { field: "keep_target_fields", description },
      ]);
    }
  }
  return [...new Set(paths)];
}

/** An integration with its client secret opened (never leaves this module). */
interface Opened {
  record: Integration;
  secret: Buffer | undefined;
}

/** A walk through one environment's integrations in name order, a chunk per query. */
function walk(store: IntegrationStore, environment: string, after: string | undefined) {
  let buffer: Integration[] = [];
  let cursor = after;
  let done = false;
  return {
    async peek(): Promise<Integration | undefined> {
      if (buffer.length === 0 && !done) {
        buffer = await store.list(environment, { after: cursor, size: listChunk });
        if (buffer.length <= listChunk) done = true;
        cursor = buffer[buffer.length - 1]?.name ?? cursor;
      }
      return buffer[0];
    },
    take(): void {
      buffer.shift();
    },
  };
}

async function readAll(store: IntegrationStore, environment: string): Promise<Integration[]> {
  const all: Integration[] = [];
  const w = walk(store, environment, undefined);
  for (let next = await w.peek(); next; next = await w.peek()) {
    all.push(next);
    w.take();
  }
  return all;
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/**
 * DiffIntegrations and PromoteIntegrations: the one place where integration
 * config crosses from one environment into another. Secrets are opened with
 * the source's data key and sealed again with the target's, compared by an
 * HMAC fingerprint, and never leave in any result, error or summary.
 */
export function createIntegrationPromotion(deps: IntegrationPromotionDeps) {
  const { store, keys, destinations, environments, fingerprintKey, clock } = deps;
  if (fingerprintKey.length < 32) throw new Error("the fingerprint key must be at least 32 bytes");

  async function requireSource(raw: string, target: string): Promise<string> {
    const from = parseSourceEnvironment(raw, target);
    if ((await environments.find(from)) === undefined) {
      throw new NotFoundError(
        "not_found",
        "ENVIRONMENT_NOT_FOUND",
        `from_environment: environment "${from}" does not exist`,
        {
          environment: from,
          field: "from_environment",
        },
      );
    }
    return from;
  }

  function openSecret(key: Buffer, environment: string, record: Integration): Buffer | undefined {
    const sealed = record.oauth2?.sealedClientSecret;
    if (sealed === undefined) return undefined;
    try {
      return open(key, sealed, clientSecretBinding(environment, record.name));
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
      throw new FailedPreconditionError(
        "failed_precondition",
        "DECRYPTION_FAILED",
        `the client secret of integration "${record.name}" in environment "${environment}" could not be decrypted`,
        { environment, integration: record.name },
      );
    }
  }

  function fingerprint(secret: Buffer): Buffer {
    return createHmac("sha256", fingerprintKey).update(secret).digest();
  }

  function sameSecret(a: Buffer | undefined, b: Buffer | undefined): boolean {
    if (a === undefined || b === undefined) return a === b;
    return timingSafeEqual(fingerprint(a), fingerprint(b));
  }

  /** The fields of `from` that differ from `to`, in path order; either may be absent (all its set fields). */
  function differences(from: Opened | undefined, to: Opened | undefined): FieldDifference[] {
    const out: FieldDifference[] = [];
    for (const { path, read } of compared) {
      const a = from && present(read(from.record));
      const b = to && present(read(to.record));
      if (!sameValue(a, b)) out.push({ field: path, from: a, to: b, secret: false });
    }
    if (!sameSecret(from?.secret, to?.secret)) {
      out.push({ field: secretField, from: undefined, to: undefined, secret: true });
    }
    return out.sort((x, y) => (x.field < y.field ? -1 : x.field > y.field ? 1 : 0));
  }

  /**
   * One page of the union of both environments' integration names, in name
   * order, each compared. SAME ones are skipped unless asked for; a page is
   * filled past them, but looks at no more than `scannedPerPageItem` names
   * per item asked for: a page that stops there is short (even empty), and
   * its token goes on after the last name it looked at.
   */
  async function diff(
    to: string,
    request: { from: string; includeSame: boolean; page: PageRequest },
  ): Promise<Page<IntegrationDiff>> {
    const from = await requireSource(request.from, to);
    const [fromKey, toKey] = await Promise.all([keys.dataKey(from), keys.dataKey(to)]);
    const { size, after } = request.page;
    const left = walk(store, from, after);
    const right = walk(store, to, after);
    const items: IntegrationDiff[] = [];
    const scanLimit = scannedPerPageItem * size;
    let scanned = 0;
    let lastScanned: string | undefined;
    while (items.length <= size) {
      const [a, b] = await Promise.all([left.peek(), right.peek()]);
      if (!a && !b) break;
      // AIP-158 allows a short page: its token continues after the last name looked at.
      if (scanned === scanLimit) return { items, nextAfter: lastScanned };
      const name = !b || (a && a.name < b.name) ? (a as Integration).name : b.name;
      scanned++;
      lastScanned = name;
      const inFrom = a?.name === name ? a : undefined;
      const inTo = b?.name === name ? b : undefined;
      if (inFrom) left.take();
      if (inTo) right.take();
      const opened = (key: Buffer, environment: string, record: Integration | undefined) =>
        record && { record, secret: openSecret(key, environment, record) };
      const fields = differences(opened(fromKey, from, inFrom), opened(toKey, to, inTo));
      const kind: IntegrationDiffKind = !inTo
        ? "only_in_from"
        : !inFrom
          ? "only_in_to"
          : fields.length > 0
            ? "different"
            : "same";
      if (kind !== "same" || request.includeSame) items.push({ name, kind, fields });
    }
    return toPage(items, size, (i) => i.name);
  }

  /** What the target's integration becomes: the source's, less the kept fields, its secret sealed for the target. */
  function promoted(
    to: string,
    toKey: Buffer,
    source: Opened,
    target: Opened | undefined,
    keep: readonly string[],
  ): Opened {
    const { sealedClientSecret: _sealed, ...settings } = source.record.oauth2 ?? ({} as Settings);
    const now = clock.now();
    const record: Integration = {
      name: source.record.name,
      displayName: source.record.displayName,
      authType: source.record.authType,
      credentialCheck: { ...source.record.credentialCheck },
      createTime: target?.record.createTime ?? now,
      updateTime: now,
      version: (target?.record.version ?? 0) + 1,
    };
    if (source.record.oauth2) record.oauth2 = structuredClone(settings);
    for (const path of keep) {
      const rule = keepable[path];
      if (rule && (!rule.oauth2 || record.oauth2) && target) rule.copy(target.record, record);
    }
    let secret = source.secret;
    if (record.oauth2 && target?.record.oauth2 && keep.includes(secretField)) {
      secret = target.secret;
    } else if (record.oauth2 && secret !== undefined) {
      // The target's own ciphertext when it holds this secret already: promoting again writes nothing.
      const held = target?.record.oauth2?.sealedClientSecret;
      record.oauth2.sealedClientSecret =
        held !== undefined && sameSecret(secret, target?.secret)
          ? held
          : seal(toKey, secret, clientSecretBinding(to, record.name));
    }
    return { record, secret };
  }

  /** A kept field must be the target's to keep: FAILED_PRECONDITION before anything is written. */
  function checkKept(source: Integration, target: Integration | undefined, keep: readonly string[]): void {
    for (const path of keep) {
      const rule = keepable[path];
      if (!rule || (rule.oauth2 && !source.oauth2)) continue;
      const missing =
        !target ||
        (rule.oauth2 && !target.oauth2) ||
        (path === secretField && target.oauth2?.sealedClientSecret === undefined);
      if (missing) {
        const where = target ? "has no such field" : "does not exist there";
        throw new FailedPreconditionError(
          "failed_precondition",
          "PROMOTION_KEPT_FIELD_MISSING",
          `keep_target_fields: integration "${source.name}" ${where}, so its ${path} cannot be kept; nothing was written`,
          { integration: source.name, field: path },
        );
      }
    }
  }

  async function checkDestinations(record: Integration, request: PromotionRequest): Promise<void> {
    const called: [string, string][] = [["credential_check.url", record.credentialCheck.url]];
    if (record.oauth2) called.push(["oauth2.token_url", record.oauth2.tokenUrl]);
    if (record.oauth2?.revocationUrl) called.push(["oauth2.revocation_url", record.oauth2.revocationUrl]);
    const checks = await Promise.all(called.map(([, url]) => destinations.check(url)));
    checks.forEach((check, i) => {
      const [field] = called[i] as [string, string];
      if (check.allowed) return;
      const description = `integration "${record.name}": ${field}: roomkey does not call this URL: ${check.why}`;
      const requestField = request.all ? "all" : "names";
      throw new RoomkeyError(
        "invalid_argument",
        "INVALID_REQUEST",
        `${requestField}: ${description}`,
        { integration: record.name, field },
        [{ field: requestField, description }],
      );
    });
  }

  interface Planned {
    source: Opened;
    target: Opened | undefined;
    next: Opened;
    promotion: IntegrationPromotion;
  }

  function plan(to: string, toKey: Buffer, source: Opened, target: Opened | undefined, keep: readonly string[]) {
    const next = promoted(to, toKey, source, target, keep);
    const changes = differences(next, target);
    const action: PromotionAction = !target ? "create" : changes.length === 0 ? "unchanged" : "update";
    return { source, target, next, promotion: { name: source.record.name, action, changes } } satisfies Planned;
  }

  /** Writes one planned integration in one single-document write; re-plans when another writer came first. */
  async function write(to: string, toKey: Buffer, first: Planned, keep: readonly string[]): Promise<Planned> {
    let planned = first;
    for (let attempt = 1; ; attempt++) {
      const { promotion, next, target } = planned;
      if (promotion.action === "unchanged") return planned;
      const written = target
        ? await store.replace(to, next.record, target.record.version)
        : await store.insert(to, next.record);
      if (written) return planned;
      if (attempt >= maxWriteAttempts) throw new ConcurrentModificationError(`integration "${promotion.name}"`);
      const now = await store.get(to, promotion.name);
      try {
        checkKept(planned.source.record, now, keep);
      } catch {
        // Deleted (or made another kind) since the plan: earlier integrations may be written already.
        throw new ConcurrentModificationError(`integration "${promotion.name}"`);
      }
      planned = plan(to, toKey, planned.source, now && { record: now, secret: openSecret(toKey, to, now) }, keep);
    }
  }

  /**
   * Copies integrations from `request.from` into `to`. Everything is read,
   * opened and checked before the first write, so a refused promotion writes
   * nothing; then each integration is one write (insert, or replace on its
   * version), in name order, so each is whole at any moment and a rerun
   * finishes an interrupted one. Accounts, tokens, webhook endpoints and
   * connect sessions are never read or written.
   */
  async function promote(to: string, request: PromotionRequest): Promise<PromotionResult> {
    const keep = parseKeep(request.keep);
    const from = await requireSource(request.from, to);
    const [fromKey, toKey] = await Promise.all([keys.dataKey(from), keys.dataKey(to)]);

    let sources: Integration[];
    let targets: Map<string, Integration>;
    if (request.all) {
      const [all, existing] = await Promise.all([readAll(store, from), readAll(store, to)]);
      sources = all;
      targets = new Map(existing.map((i) => [i.name, i]));
    } else {
      const names = [...new Set(request.names)].sort();
      const found = await inBatches(names, readConcurrency, async (name) => {
        const [source, target] = await Promise.all([store.get(from, name), store.get(to, name)]);
        if (!source) {
          throw new NotFoundError(
            "not_found",
            "INTEGRATION_NOT_FOUND",
            `names: integration "${name}" does not exist in environment "${from}"`,
            { environment: from, integration: name },
          );
        }
        return { source, target };
      });
      sources = found.map((f) => f.source);
      targets = new Map(found.flatMap((f) => (f.target ? [[f.target.name, f.target] as const] : [])));
    }

    const plans: Planned[] = [];
    for (const source of sources) {
      const target = targets.get(source.name);
      checkKept(source, target, keep);
      const opened = {
        source: { record: source, secret: openSecret(fromKey, from, source) },
        target: target && { record: target, secret: openSecret(toKey, to, target) },
      };
      plans.push(plan(to, toKey, opened.source, opened.target, keep));
    }
    await inBatches(plans, readConcurrency, (p) =>
      p.promotion.action === "unchanged" ? Promise.resolve() : checkDestinations(p.next.record, request),
    );

    if (request.dryRun) return { from, to, dryRun: true, promotions: plans.map((p) => p.promotion) };

    const done: IntegrationPromotion[] = [];
    let complete = false;
    try {
      for (const p of plans) done.push((await write(to, toKey, p, keep)).promotion);
      complete = true;
    } finally {
      await report({
        from,
        to,
        complete,
        promotions: done.map((p) => ({ name: p.name, action: p.action, fields: p.changes.map((c) => c.field) })),
      });
    }
    return { from, to, dryRun: false, promotions: done };
  }

  async function report(summary: PromotionSummary): Promise<void> {
    if (!deps.onPromoted) return;
    try {
      await deps.onPromoted(summary);
    } catch (error) {
      deps.warn?.("could not report a promotion", { err: error, from: summary.from, to: summary.to });
    }
  }

  return { diff, promote };
}
