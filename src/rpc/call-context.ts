import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { SessionFacts } from "../domain/connect-sessions/connect-sessions.js";

/**
 * Who is calling: the operator's admin key, an API token of the call's
 * environment, or a connect session of it (an end user's browser).
 */
export type Principal =
  | { kind: "admin" }
  | { kind: "token"; tokenId: string; scopes: ReadonlySet<string>; environment: string }
  | { kind: "session"; session: SessionFacts };

/** What the edge established about a call before its handler runs. */
export interface CallContext {
  environment: string;
  principal: Principal;
  /** The caller's peer key (IPv6 as its /64), when the transport knows it: for the audit log. */
  peer?: string;
}

export const callContextKey = createContextKey<CallContext | undefined>(undefined, {
  description: "roomkey call context",
});

/** The call's context; the edge always sets it before a handler runs. */
export function callContext(ctx: HandlerContext): CallContext {
  const value = ctx.values.get(callContextKey);
  if (!value) throw new Error(`no call context for ${ctx.method.name}: handler not wrapped by the edge`);
  return value;
}
