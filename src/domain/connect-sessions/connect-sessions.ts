/**
 * Connect sessions: what they are, their secrets, and where they stand. A
 * session lets one end user connect one account (or re-authorize one) from a
 * browser; its secret `rkcs_<environment>_<48 random><6 checksum>` is shown
 * once and stored as a SHA-256, like an API token's.
 */
import { hash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { EndUser } from "../accounts/accounts.js";
import { RoomkeyError } from "../errors.js";
import { base62Fixed, base62Value, randomBase62 } from "../ids.js";

/** How long a session lives unless CreateConnectSession says: Nango's 30 minutes. */
export const defaultSessionLifetimeMs = 30 * 60_000;
/** The longest a session may live. */
export const maxSessionLifetimeMs = 24 * 3_600_000;
/**
 * Connection attempts one session may make (each ConnectAccount or
 * StartOAuthConnection is one): enough for typos, not enough for a holder of
 * a leaked secret to fill the environment with accounts and handshake jobs.
 */
export const maxSessionAttempts = 10;
/** How long a ConnectAccount's reservation of an account id keeps a second one waiting (its call makes the account). */
export const reservationLeaseMs = 15_000;
/** Tries of a session write that lost a race to another (version-checked) before giving up. */
export const sessionWriteTries = 5;

/** A connect session as stored. */
export interface ConnectSession {
  id: string;
  /** SHA-256 of the secret, hex (unique). */
  hash: string;
  displayPrefix: string;
  endUser: EndUser;
  tenantId: string;
  /** The integrations it offers; for a re-authorization, the account's. */
  integrations: string[];
  /** The account it re-authorizes, or the last one it began connecting (reserved before it exists). */
  accountId?: string;
  /**
   * When and how `accountId` was reserved (not for a re-authorization): a
   * ConnectAccount makes its account within the call, so a reservation
   * without an account is one still under way for `reservationLeaseMs`; an
   * OAuth start's account exists only once the end user comes back.
   */
  reserveTime?: Date;
  reserveKind?: "connect" | "oauth";
  reauthorize: boolean;
  allowedOrigins: string[];
  returnUrl?: string;
  labels: Record<string, string>;
  /** `admin`, or the id of the token that made it. */
  createdBy: string;
  createTime: Date;
  expireTime: Date;
  /** When its account became ACTIVE: it connects nothing more. */
  spendTime?: Date;
  revokeTime?: Date;
  /** Connection attempts made (see maxSessionAttempts). */
  attempts: number;
  version: number;
}

export type ConnectSessionStatus = "open" | "spent" | "expired" | "revoked";

/** Where a session stands at `now`. Precedence: revoked, expired, spent, open. */
export function sessionStatusAt(
  session: Pick<ConnectSession, "revokeTime" | "expireTime" | "spendTime">,
  now: number,
): ConnectSessionStatus {
  if (session.revokeTime) return "revoked";
  if (session.expireTime.getTime() <= now) return "expired";
  if (session.spendTime) return "spent";
  return "open";
}

/** Why a session that ended opens nothing: UNAUTHENTICATED with its reason (one wording, at the edge and after). */
export function sessionEndedError(status: "expired" | "revoked"): RoomkeyError {
  return status === "revoked"
    ? new RoomkeyError("unauthenticated", "CONNECT_SESSION_REVOKED", "authorization: the connect session was revoked")
    : new RoomkeyError("unauthenticated", "CONNECT_SESSION_EXPIRED", "authorization: the connect session has expired");
}

/** A session as callers see it: never its hash. */
export type ConnectSessionView = Omit<ConnectSession, "hash" | "version" | "createdBy"> & {
  status: ConnectSessionStatus;
};

export function toSessionView(session: ConnectSession, now: number): ConnectSessionView {
  const { hash: _hash, version: _version, createdBy: _by, reserveTime: _time, reserveKind: _kind, ...view } = session;
  return { ...view, status: sessionStatusAt(session, now) };
}

/**
 * A session as its own holder (an end user's browser) sees it: not the
 * platform's labels or tenant id.
 */
export function toOwnSessionView(session: ConnectSession, now: number): ConnectSessionView {
  return { ...toSessionView(session, now), labels: {}, tenantId: "" };
}

/**
 * What the hot path keeps of a session, enough to authenticate a call at any
 * moment without another lookup. Whether it is spent is read at each call
 * that would connect (it changes under the cache, from a worker).
 */
export interface SessionFacts {
  id: string;
  environment: string;
  expireTime: number;
  revoked: boolean;
  allowedOrigins: ReadonlySet<string>;
}

export function sessionFactsOf(session: ConnectSession, environment: string): SessionFacts {
  return {
    id: session.id,
    environment,
    expireTime: session.expireTime.getTime(),
    revoked: session.revokeTime !== undefined,
    allowedOrigins: new Set(session.allowedOrigins),
  };
}

/** An integration a session offers, as a connect UI shows it. */
export interface ConnectIntegrationView {
  name: string;
  displayName: string;
  authType: "api_key" | "basic" | "oauth2";
}

const prefix = "rkcs_";
const entropyLength = 48;
const checksumLength = 6;
const randomLength = entropyLength + checksumLength;
/** Tested, never executed: nothing is allocated for a match. */
const shape = /^rkcs_[a-z][a-z0-9-]{0,22}[a-z0-9]_[0-9A-Za-z]{54}$/;

function checksum(body: string): string {
  return base62Fixed(crc32(body), checksumLength);
}

/** A new session secret for an environment. */
export function generateSessionSecret(environment: string): string {
  const body = `${prefix}${environment}_${randomBase62(entropyLength)}`;
  return body + checksum(body);
}

/** Whether a bearer secret is meant as a connect session (by its prefix alone). */
export function looksLikeSessionSecret(secret: string): boolean {
  return secret.startsWith(prefix);
}

export type SessionSecretShape =
  | { kind: "session"; environment: string }
  | { kind: "malformed" }
  | { kind: "bad_checksum"; environment: string };

/** A secret's shape and checksum, checked with no I/O. */
export function inspectSessionSecret(secret: string): SessionSecretShape {
  if (!shape.test(secret)) return { kind: "malformed" };
  const environment = secret.slice(prefix.length, secret.length - randomLength - 1);
  if (crc32(secret.slice(0, -checksumLength)) !== base62Value(secret.slice(-checksumLength))) {
    return { kind: "bad_checksum", environment };
  }
  return { kind: "session", environment };
}

export function hashSessionSecret(secret: string): string {
  return hash("sha256", secret, "hex");
}

/** The prefix shown for a session: `rkcs_staging_a1B2…`. */
export function sessionDisplayPrefix(secret: string, environment: string): string {
  return `${secret.slice(0, `${prefix}${environment}_`.length + 4)}…`;
}

/** The origin of an absolute http(s) URL (`https://app.example.com`), or undefined. */
export function originOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}
