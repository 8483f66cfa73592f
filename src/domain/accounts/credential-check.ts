import type { CredentialCheck } from "../integrations/integrations.js";
import type { KeyCredential } from "./accounts.js";

/** What the provider said of a credential. */
export type CheckOutcome =
  | { kind: "ok"; remoteId: string; remoteName: string }
  /** The provider refused the credential (401, 403, another 4xx): retrying cannot help. */
  | { kind: "refused"; reason: string }
  /** The provider could not answer now (network error, timeout, 5xx, 429): retry, after `retryAfterMs` if it said. */
  | { kind: "unavailable"; reason: string; retryAfterMs?: number };

/** The credential as the check request sends it: an account's own, or an OAuth access token. */
export type CheckCredential = KeyCredential | { kind: "access_token"; accessToken: string };

/** Calls an integration's verify request with a credential and reads the remote account. */
export interface CredentialChecker {
  check(check: CredentialCheck, credential: CheckCredential): Promise<CheckOutcome>;
}
