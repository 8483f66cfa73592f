import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type {
  TokenState as DomainTokenState,
  VerifyStatus as DomainVerifyStatus,
  Token,
  Verification,
} from "../../domain/tokens/tokens.js";
import {
  type TokenSchema,
  TokenState,
  VerifyStatus,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../../gen/roomkey/v1/token_service_pb.js";
import { toTimestamp } from "./time.js";

const states: Record<DomainTokenState, TokenState> = {
  active: TokenState.ACTIVE,
  expired: TokenState.EXPIRED,
  revoked: TokenState.REVOKED,
  rotated: TokenState.ROTATED,
};

const statesBack = new Map<TokenState, DomainTokenState>(
  Object.entries(states).map(([domain, proto]) => [proto, domain as DomainTokenState]),
);

const verifyStatuses: Record<DomainVerifyStatus, VerifyStatus> = {
  valid: VerifyStatus.VALID,
  malformed: VerifyStatus.MALFORMED,
  bad_checksum: VerifyStatus.BAD_CHECKSUM,
  wrong_environment: VerifyStatus.WRONG_ENVIRONMENT,
  unknown: VerifyStatus.UNKNOWN,
  expired: VerifyStatus.EXPIRED,
  revoked: VerifyStatus.REVOKED,
  rotated: VerifyStatus.ROTATED,
};

/** The ListTokens filter; UNSPECIFIED means any state. */
export function tokenStateFromProto(state: TokenState): DomainTokenState | undefined {
  return statesBack.get(state);
}

/** A token's metadata as callers see it, in its state at `now`. */
export function tokenToProto(token: Token, state: DomainTokenState): MessageInitShape<typeof TokenSchema> {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    state: states[state],
    displayPrefix: token.displayPrefix,
    environment: token.environment,
    createTime: toTimestamp(token.createTime),
    expireTime: toTimestamp(token.expireTime),
    lastUsedTime: toTimestamp(token.lastUsedTime),
    revokeTime: toTimestamp(token.revokeTime),
    rotateTime: toTimestamp(token.rotateTime),
    graceExpireTime: toTimestamp(token.graceExpireTime),
    successorId: token.successorId ?? "",
    predecessorId: token.predecessorId ?? "",
    createdBy: token.createdBy,
  };
}

function buildVerification(verification: Verification): VerifyTokenResponse {
  const { status, token, inGrace } = verification;
  const valid = status === "valid";
  const expireTime = inGrace ? token?.graceExpireTime : token?.expireTime;
  return create(VerifyTokenResponseSchema, {
    valid,
    status: verifyStatuses[status],
    tokenId: token?.id ?? "",
    scopes: valid && token ? [...token.scopeList] : [],
    expireTime: valid && expireTime !== undefined ? toTimestamp(new Date(expireTime)) : undefined,
    environment: verification.environment ?? "",
    inGracePeriod: inGrace,
  });
}

/**
 * Answers for a known token, one per verdict, made once while its cached facts
 * live: VerifyToken answers the same token over and over. Frozen, so the
 * transport encodes each once too.
 */
const answers = new WeakMap<Verification, VerifyTokenResponse>();

export function verificationToProto(verification: Verification): VerifyTokenResponse {
  // Verdicts on known tokens are frozen and shared (see the verifier): answer each once.
  if (!Object.isFrozen(verification)) return buildVerification(verification);
  let answer = answers.get(verification);
  if (!answer) {
    answer = Object.freeze(buildVerification(verification));
    answers.set(verification, answer);
  }
  return answer;
}
