import type { ServiceImpl } from "@connectrpc/connect";
import type { Listing, PageTokens } from "../../domain/paging.js";
import type { Caller, TokenService as Tokens } from "../../domain/tokens/token-service.js";
import type { TokenVerifier } from "../../domain/tokens/token-verifier.js";
import { stateAt } from "../../domain/tokens/tokens.js";
import type { TokenService } from "../../gen/roomkey/v1/token_service_pb.js";
import { type CallContext, callContext } from "../call-context.js";
import { fromDuration } from "../mappers/time.js";
import { tokenStateFromProto, tokenToProto, verificationToProto } from "../mappers/token-mapper.js";

export interface TokenHandlerDeps {
  tokens: Pick<Tokens, "create" | "get" | "list" | "revoke" | "rotate">;
  verifier: Pick<TokenVerifier, "verify">;
  pages: PageTokens;
  now(): number;
}

function callerOf({ principal }: CallContext): Caller {
  if (principal.kind === "session")
    throw new Error("a connect session never reaches TokenService: the edge refuses it");
  return principal.kind === "admin"
    ? principal
    : { kind: "token", tokenId: principal.tokenId, scopes: principal.scopes };
}

/** TokenService: maps requests to the domain and results back. */
export function createTokenHandlers({
  tokens,
  verifier,
  pages,
  now,
}: TokenHandlerDeps): ServiceImpl<typeof TokenService> {
  const view = (token: Parameters<typeof tokenToProto>[0]) => tokenToProto(token, stateAt(token, now()));
  return {
    async createToken(req, ctx) {
      const call = callContext(ctx);
      const result = await tokens.create(call.environment, callerOf(call), {
        name: req.name,
        scopes: [...req.scopes],
        ttlMs: fromDuration(req.ttl),
        idempotencyKey: req.idempotencyKey || undefined,
      });
      return {
        token: view(result.token),
        secret: result.secret ?? "",
        replayed: result.replayed,
        notice: result.replayed
          ? `this idempotency key created token ${result.token.id} earlier; its secret was returned then and is not shown again`
          : "",
      };
    },
    async getToken(req, ctx) {
      return { token: view(await tokens.get(callContext(ctx).environment, req.id)) };
    },
    async listTokens(req, ctx) {
      const { environment } = callContext(ctx);
      const listing: Listing = { environment, method: "ListTokens", filter: { state: String(req.state) } };
      const page = await tokens.list(
        environment,
        tokenStateFromProto(req.state),
        await pages.parse(listing, req.pageToken, req.pageSize),
      );
      return { tokens: page.items.map(view), nextPageToken: await pages.next(listing, page.nextAfter) };
    },
    async revokeToken(req, ctx) {
      return { token: view(await tokens.revoke(callContext(ctx).environment, req.id)) };
    },
    async rotateToken(req, ctx) {
      const call = callContext(ctx);
      const result = await tokens.rotate(call.environment, callerOf(call), req.id, fromDuration(req.gracePeriod));
      return { token: view(result.token), secret: result.secret, previous: view(result.previous) };
    },
    // Not async: a cached token is answered without a promise.
    verifyToken(req, ctx) {
      const verification = verifier.verify(req.token, callContext(ctx).environment);
      return verification instanceof Promise
        ? verification.then(verificationToProto)
        : verificationToProto(verification);
    },
  };
}
