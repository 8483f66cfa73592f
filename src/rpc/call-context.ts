import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** Who is calling: the operator's admin key, or an API token of the call's environment. */
export type Principal =
  | { kind: "admin" }
  | { kind: "token"; tokenId: string; scopes: ReadonlySet<string>; environment: string };

/** What the edge established about a call before its handler runs. */
export interface CallContext {
  environment: string;
  principal: Principal;
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
