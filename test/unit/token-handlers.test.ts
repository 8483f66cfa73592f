import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Caller, CreateTokenInput } from "../../src/domain/tokens/token-service.js";
import { factsOf, type Token, type Verification } from "../../src/domain/tokens/tokens.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { TokenService, TokenState, VerifyStatus } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { createTokenHandlers, type TokenHandlerDeps } from "../../src/rpc/handlers/token-handlers.js";
import { testPageTokens } from "../helpers/fakes.js";
import { failure, headers, routerFor, tokenSecret } from "../helpers/router.js";

const now = Date.UTC(2030, 0, 1);

function token(id: string, overrides: Partial<Token> = {}): Token {
  return {
    id,
    environment: "staging",
    name: "billing",
    scopes: ["accounts:read"],
    hash: "h",
    displayPrefix: "rk_staging_ab",
    createTime: new Date(now - 60_000),
    createdBy: "admin",
    state: "active",
    version: 1,
    ...overrides,
  };
}

/** TokenService handlers behind the real edge, over connect-es's in-memory transport, with a fake domain. */
function setup(
  scopes: string[] = [],
  verification: Verification | Promise<Verification> = { status: "unknown", inGrace: false },
) {
  const created: { environment: string; caller: Caller; input: CreateTokenInput }[] = [];
  const listed: { state: string | undefined }[] = [];
  let replay = false;
  const tokens: TokenHandlerDeps["tokens"] = {
    create: async (environment, caller, input) => {
      created.push({ environment, caller, input });
      return replay
        ? { token: token("tok_first"), replayed: true }
        : { token: token("tok_new"), secret: "rk_staging_secret", replayed: false };
    },
    get: async (_environment, id) => token(id),
    list: async (_environment, state) => {
      listed.push({ state });
      return { items: [token("tok_a", { revokeTime: new Date(now - 1_000), state: "revoked" })], nextAfter: undefined };
    },
    revoke: async (_environment, id) => token(id, { revokeTime: new Date(now) }),
    rotate: async () => ({ token: token("tok_next"), secret: "rk_staging_next", previous: token("tok_prev") }),
  };
  const verified: string[] = [];
  const verifier: TokenHandlerDeps["verifier"] = {
    verify: (secret, environment) => {
      verified.push(`${environment}:${secret}`);
      return verification;
    },
  };
  const { transport } = routerFor(
    (router, edge) =>
      router.service(
        TokenService,
        edge.wrap(TokenService, createTokenHandlers({ tokens, verifier, pages: testPageTokens(), now: () => now })),
      ),
    { scopes },
  );
  return {
    client: createClient(TokenService, transport),
    created,
    listed,
    verified,
    replayNext: () => {
      replay = true;
    },
  };
}

describe("TokenService handlers behind the edge", () => {
  it("when a token creates a token, then the domain gets the request and the caller, and the secret comes back once", async () => {
    const { client, created } = setup(["tokens:write", "accounts:read"]);
    const answer = await client.createToken(
      { name: "billing", scopes: ["accounts:read"], ttl: { seconds: 3600n }, idempotencyKey: "" },
      { headers: headers(tokenSecret) },
    );
    expect(created).toEqual([
      {
        environment: "staging",
        caller: { kind: "token", tokenId: "tok_1", scopes: new Set(["tokens:write", "accounts:read"]) },
        input: { name: "billing", scopes: ["accounts:read"], ttlMs: 3_600_000, idempotencyKey: undefined },
      },
    ]);
    expect(answer.secret).toBe("rk_staging_secret");
    expect(answer.token?.id).toBe("tok_new");
    expect(answer.replayed).toBe(false);
    expect(answer.notice).toBe("");
  });

  it("when the idempotency key was used before, then no secret and a notice naming the first token", async () => {
    const { client, replayNext } = setup();
    replayNext();
    const answer = await client.createToken(
      { name: "billing", scopes: ["accounts:read"], idempotencyKey: "k-1" },
      { headers: headers() },
    );
    expect(answer).toMatchObject({ secret: "", replayed: true });
    expect(answer.notice).toContain("tok_first");
  });

  it("when the token lacks tokens:write, then PERMISSION_DENIED SCOPE_MISSING before the domain runs", async () => {
    const { client, created } = setup(["tokens:read"]);
    const error = await failure(
      client.createToken({ name: "x", scopes: ["accounts:read"] }, { headers: headers(tokenSecret) }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SCOPE_MISSING");
    expect(created).toEqual([]);
  });

  it("when ListTokens filters by state, then the domain gets the state and the answer carries each token's state", async () => {
    const { client, listed } = setup();
    const answer = await client.listTokens({ state: TokenState.REVOKED }, { headers: headers() });
    expect(listed).toEqual([{ state: "revoked" }]);
    expect(answer.tokens.map((t) => [t.id, t.state])).toEqual([["tok_a", TokenState.REVOKED]]);
    expect(answer.nextPageToken).toBe("");
  });

  it("when VerifyToken is answered from memory, then the verdict names the call's environment and the token", async () => {
    const facts = factsOf(token("tok_v"));
    const { client, verified } = setup([], { status: "valid", environment: "staging", token: facts, inGrace: false });
    const answer = await client.verifyToken({ token: "rk_staging_checked" }, { headers: headers() });
    expect(verified).toEqual(["staging:rk_staging_checked"]);
    expect(answer).toMatchObject({
      valid: true,
      status: VerifyStatus.VALID,
      tokenId: "tok_v",
      scopes: ["accounts:read"],
    });
  });

  it("when VerifyToken gets an unknown secret, then an answer with valid false, not an error", async () => {
    const { client } = setup([], Promise.resolve({ status: "unknown", environment: "staging", inGrace: false }));
    const answer = await client.verifyToken({ token: "rk_staging_nope" }, { headers: headers() });
    expect(answer).toMatchObject({ valid: false, status: VerifyStatus.UNKNOWN });
  });
});
