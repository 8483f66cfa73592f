/**
 * Authentication, in one module: who a call's bearer secret says it is. The
 * admin key (compared in constant time) opens every environment; an API token
 * opens the environment it was made in (through the token verifier and its
 * cache); anything else is refused with a reason. The edge (edge.ts) asks;
 * scopes are checked there, against rpc/method-policy.ts.
 */
import { hash, timingSafeEqual } from "node:crypto";
import {
  looksLikeSessionSecret,
  type SessionFacts,
  sessionEndedError,
} from "../domain/connect-sessions/connect-sessions.js";
import type { SessionVerdict, SessionVerifier } from "../domain/connect-sessions/session-verifier.js";
import { RoomkeyError } from "../domain/errors.js";
import type { TokenVerifier } from "../domain/tokens/token-verifier.js";
import type { TokenFacts, Verification, VerifyStatus } from "../domain/tokens/tokens.js";
import type { Principal } from "./call-context.js";

/**
 * Turns a bearer secret into a principal of the call's environment. Answers
 * without a promise when it can (a cached token): this runs on every call.
 */
export interface Authenticator {
  /** Throws UNAUTHENTICATED or PERMISSION_DENIED errors; never returns for a bad secret. */
  authenticate(secret: string, environment: string): Principal | Promise<Principal>;
  /** The principal when memory alone shows the secret valid (admin key, cached token); else undefined. */
  authenticateFromMemory(secret: string, environment: string): Principal | undefined;
  /** Whether a credential with this secret exists here (a token in the known-hash filter): no one makes those up. */
  knownToExist(secret: string, environment: string): boolean;
  /**
   * The id of the token this secret is, whatever its state, when memory
   * knows it in `environment` (no lookup): what an audit entry of a refusal
   * names.
   */
  identify?(secret: string, environment: string): string | undefined;
}

function digest(value: string): Buffer {
  return hash("sha256", value, "buffer");
}

function invalidCredentials(): RoomkeyError {
  return new RoomkeyError(
    "unauthenticated",
    "CREDENTIALS_INVALID",
    "authorization: the credentials are not valid here",
  );
}

/** Whether a secret is the admin key: a constant-time comparison of digests. */
export function adminKeyMatcher(adminKey: string): (secret: string) => boolean {
  const adminDigest = digest(adminKey);
  // Token secrets start with "rk_": unless the admin key does too, they need no admin comparison.
  const adminLooksLikeToken = adminKey.startsWith("rk");
  // (Connect-session secrets start with "rk" too: "rkcs_".)
  return (secret) => (adminLooksLikeToken || !secret.startsWith("rk")) && timingSafeEqual(digest(secret), adminDigest);
}

/** The admin key, then connect sessions (by their `rkcs_` prefix), then environment tokens. */
export function createAuthenticator(deps: {
  adminKey: string;
  tokens?: Authenticator;
  sessions?: Authenticator;
}): Authenticator {
  const isAdminKey = adminKeyMatcher(deps.adminKey);
  const credentialsFor = (secret: string) => (looksLikeSessionSecret(secret) ? deps.sessions : deps.tokens);
  return {
    authenticate(secret, environment) {
      if (isAdminKey(secret)) return { kind: "admin" };
      const next = credentialsFor(secret);
      if (!next) throw invalidCredentials();
      return next.authenticate(secret, environment);
    },
    authenticateFromMemory(secret, environment) {
      if (isAdminKey(secret)) return { kind: "admin" };
      return credentialsFor(secret)?.authenticateFromMemory(secret, environment);
    },
    knownToExist: (secret, environment) => credentialsFor(secret)?.knownToExist(secret, environment) ?? false,
    identify: (secret, environment) => credentialsFor(secret)?.identify?.(secret, environment),
  };
}

const sessionRefusals: Record<Exclude<SessionVerdict["status"], "valid" | "wrong_environment">, RoomkeyError> = {
  malformed: refusal("CREDENTIALS_INVALID", "the credentials are neither the admin key nor a roomkey secret"),
  bad_checksum: refusal(
    "TOKEN_BAD_CHECKSUM",
    "the connect session's checksum does not match: a typo or a truncated copy",
  ),
  unknown: refusal("CREDENTIALS_INVALID", "the connect session is not known in this environment"),
  expired: Object.freeze(sessionEndedError("expired")),
  revoked: Object.freeze(sessionEndedError("revoked")),
};

/** One principal per cached session, made once. */
const sessionPrincipals = new WeakMap<SessionFacts, Principal>();

/**
 * Connect sessions as credentials: a session of another environment is
 * PERMISSION_DENIED naming both, from the secret's own text; an expired or
 * revoked one UNAUTHENTICATED with its reason. What a session may call is the
 * edge's to decide (method-policy.ts).
 */
export function createSessionAuthenticator(
  verifier: Pick<SessionVerifier, "verify" | "verifyFromMemory">,
): Authenticator {
  const principalOfVerdict = (verdict: SessionVerdict, environment: string): Principal => {
    if (verdict.status === "valid") {
      let principal = sessionPrincipals.get(verdict.facts);
      if (!principal) {
        principal = { kind: "session", session: verdict.facts };
        sessionPrincipals.set(verdict.facts, principal);
      }
      return principal;
    }
    if (verdict.status === "wrong_environment") {
      throw new RoomkeyError(
        "permission_denied",
        "TOKEN_WRONG_ENVIRONMENT",
        `authorization: this connect session belongs to ${verdict.environment}, not ${environment}`,
        { token_environment: verdict.environment, requested_environment: environment },
      );
    }
    throw sessionRefusals[verdict.status];
  };
  return {
    authenticate(secret, environment) {
      const verdict = verifier.verify(secret, environment);
      return verdict instanceof Promise
        ? verdict.then((v) => principalOfVerdict(v, environment))
        : principalOfVerdict(verdict, environment);
    },
    authenticateFromMemory(secret, environment) {
      const verdict = verifier.verifyFromMemory(secret, environment);
      return verdict ? principalOfVerdict(verdict, environment) : undefined;
    },
    // Sessions have no known-hash filter: a throttled peer's made-up session costs it a failure.
    knownToExist: () => false,
  };
}

function refusal(reason: string, message: string): RoomkeyError {
  return Object.freeze(new RoomkeyError("unauthenticated", reason, `authorization: ${message}`));
}

/**
 * One frozen error per refusal, made once: a flood of bad secrets allocates
 * no error (and captures no stack) per call, and the status each becomes is
 * encoded once (see `toConnectError`).
 */
const refusals: Record<Exclude<VerifyStatus, "valid" | "wrong_environment">, RoomkeyError> = {
  malformed: refusal("CREDENTIALS_INVALID", "the credentials are neither the admin key nor a roomkey token"),
  bad_checksum: refusal("TOKEN_BAD_CHECKSUM", "the token's checksum does not match: a typo or a truncated copy"),
  unknown: refusal("CREDENTIALS_INVALID", "the token is not known in this environment"),
  expired: refusal("TOKEN_EXPIRED", "the token has expired"),
  revoked: refusal("TOKEN_REVOKED", "the token was revoked"),
  rotated: refusal("TOKEN_ROTATED", "the token was rotated and its grace period has ended"),
};

/**
 * Environment API tokens as credentials. A token of another environment is
 * PERMISSION_DENIED naming both environments, decided from the token's own
 * text without any lookup; every other refusal is UNAUTHENTICATED with a
 * reason that says why.
 */
export function createTokenAuthenticator(
  verifier: Pick<TokenVerifier, "verify" | "verifyFromMemory" | "knownToExist"> &
    Partial<Pick<TokenVerifier, "identify">>,
): Authenticator {
  return {
    authenticate(secret, environment) {
      const verification = verifier.verify(secret, environment);
      return verification instanceof Promise
        ? verification.then((v) => principalOf(v, environment))
        : principalOf(verification, environment);
    },
    authenticateFromMemory(secret, environment) {
      const verification = verifier.verifyFromMemory(secret, environment);
      return verification ? principalOf(verification, environment) : undefined;
    },
    knownToExist: (secret, environment) => verifier.knownToExist(secret, environment),
    identify: (secret, environment) => verifier.identify?.(secret, environment),
  };
}

/** One principal per known token, made once. */
const principals = new WeakMap<TokenFacts, Principal>();

/** The principal of a valid token, or the error that says why not. */
function principalOf(verification: Verification, environment: string): Principal {
  const { status, token } = verification;
  if (status === "valid" && token) {
    let principal = principals.get(token);
    if (!principal) {
      principal = { kind: "token", tokenId: token.id, scopes: token.scopes, environment: token.environment };
      principals.set(token, principal);
    }
    return principal;
  }
  if (status === "wrong_environment") {
    const owner = verification.environment ?? "";
    throw new RoomkeyError(
      "permission_denied",
      "TOKEN_WRONG_ENVIRONMENT",
      `authorization: this token belongs to ${owner}, not ${environment}`,
      { token_environment: owner, requested_environment: environment },
    );
  }
  throw refusals[status === "valid" ? "unknown" : status];
}
