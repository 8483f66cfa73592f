/** The lifecycle state of a token at a moment. Precedence: revoked, rotated, expired, active. */
export type TokenState = "active" | "expired" | "revoked" | "rotated";

/** An API token as stored: only the SHA-256 of its secret, never the secret. */
export interface Token {
  id: string;
  environment: string;
  name: string;
  scopes: string[];
  /** SHA-256 of the secret, hex (unique). */
  hash: string;
  displayPrefix: string;
  createTime: Date;
  expireTime?: Date;
  lastUsedTime?: Date;
  revokeTime?: Date;
  rotateTime?: Date;
  /** When a rotated token stops working. */
  graceExpireTime?: Date;
  /** When the rotation worker retired it (grace over, dropped from every cache). */
  retireTime?: Date;
  successorId?: string;
  predecessorId?: string;
  /** `admin` or the id of the token that created this one. */
  createdBy: string;
  /** Stored state, kept by writes and the rotation worker's sweeps; `stateAt` is the truth. */
  state: TokenState;
  version: number;
}

/** The state of a token at `now`, from its timestamps. */
export function stateAt(token: Pick<Token, "revokeTime" | "rotateTime" | "expireTime">, now: number): TokenState {
  if (token.revokeTime) return "revoked";
  if (token.rotateTime) return "rotated";
  if (token.expireTime && token.expireTime.getTime() <= now) return "expired";
  return "active";
}

/** Why a token is or is not valid (VerifyToken's status). */
export type VerifyStatus =
  | "valid"
  | "malformed"
  | "bad_checksum"
  | "wrong_environment"
  | "unknown"
  | "expired"
  | "revoked"
  | "rotated";

/**
 * What the hot path keeps of a token: enough to answer verification and
 * authentication at any moment without another lookup.
 */
export interface TokenFacts {
  id: string;
  environment: string;
  scopes: ReadonlySet<string>;
  scopeList: readonly string[];
  expireTime: number | undefined;
  revoked: boolean;
  /** Set for a rotated token: when its grace period ends. */
  graceExpireTime: number | undefined;
}

export function factsOf(token: Token): TokenFacts {
  return {
    id: token.id,
    environment: token.environment,
    scopes: new Set(token.scopes),
    scopeList: [...token.scopes],
    expireTime: token.expireTime?.getTime(),
    revoked: token.revokeTime !== undefined,
    graceExpireTime: token.rotateTime ? (token.graceExpireTime?.getTime() ?? token.rotateTime.getTime()) : undefined,
  };
}

/**
 * The verdict on a token known here, at `now`. A valid token with a grace end
 * is a rotated one within its grace period.
 */
export function statusAt(facts: TokenFacts, now: number): VerifyStatus {
  if (facts.revoked) return "revoked";
  if (facts.graceExpireTime !== undefined) return facts.graceExpireTime > now ? "valid" : "rotated";
  if (facts.expireTime !== undefined && facts.expireTime <= now) return "expired";
  return "valid";
}

/** The outcome of verifying a secret in an environment. */
export interface Verification {
  status: VerifyStatus;
  /** The environment the secret names, when it has a roomkey shape. */
  environment?: string;
  /** Present when the token is known in this environment. */
  token?: TokenFacts;
  inGrace: boolean;
}
