import { RoomkeyError } from "../domain/errors.js";
import type { TokenVerifier } from "../domain/tokens/token-verifier.js";
import type { TokenFacts, Verification, VerifyStatus } from "../domain/tokens/tokens.js";
import type { Principal } from "./call-context.js";
import type { TokenAuthenticator } from "./edge.js";

const refusals: Record<Exclude<VerifyStatus, "valid" | "wrong_environment">, [reason: string, message: string]> = {
  malformed: ["CREDENTIALS_INVALID", "the credentials are neither the admin key nor a roomkey token"],
  bad_checksum: ["TOKEN_BAD_CHECKSUM", "the token's checksum does not match: a typo or a truncated copy"],
  unknown: ["CREDENTIALS_INVALID", "the token is not known in this environment"],
  expired: ["TOKEN_EXPIRED", "the token has expired"],
  revoked: ["TOKEN_REVOKED", "the token was revoked"],
  rotated: ["TOKEN_ROTATED", "the token was rotated and its grace period has ended"],
};

/**
 * Environment API tokens as credentials. A token of another environment is
 * PERMISSION_DENIED naming both environments, decided from the token's own
 * text without any lookup; every other refusal is UNAUTHENTICATED with a
 * reason that says why.
 */
export function createTokenAuthenticator(verifier: Pick<TokenVerifier, "verify">): TokenAuthenticator {
  return {
    authenticate(secret, environment) {
      const verification = verifier.verify(secret, environment);
      return verification instanceof Promise
        ? verification.then((v) => principalOf(v, environment))
        : principalOf(verification, environment);
    },
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
  const [reason, message] = refusals[status === "valid" ? "unknown" : status];
  throw new RoomkeyError("unauthenticated", reason, `authorization: ${message}`);
}
