import { hash, timingSafeEqual } from "node:crypto";
import type { DescMethod, DescService, Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import type { Validator } from "@bufbuild/protovalidate";
import { Code, type ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { environmentHeader, invalidEnvironment, parseEnvironmentName } from "../domain/environment-name.js";
import type { Environment } from "../domain/environments.js";
import { InvalidArgumentError, RoomkeyError } from "../domain/errors.js";
import { type CallContext, callContextKey, type Principal } from "./call-context.js";
import { toConnectError } from "./errors.js";
import { type MethodPolicy, policyOf } from "./method-policy.js";

/**
 * Turns a bearer secret into a principal of the call's environment. Answers
 * without a promise when it can (a cached token): this runs on every call.
 */
export interface Authenticator {
  /** Throws UNAUTHENTICATED or PERMISSION_DENIED errors; never returns for a bad secret. */
  authenticate(secret: string, environment: string): Principal | Promise<Principal>;
}

/** Environment API tokens: a principal, or a thrown UNAUTHENTICATED / PERMISSION_DENIED error. */
export interface TokenAuthenticator {
  authenticate(secret: string, environment: string): Principal | Promise<Principal>;
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

/** The admin key (constant-time comparison of digests), then environment tokens. */
export function createAuthenticator(deps: { adminKey: string; tokens?: TokenAuthenticator }): Authenticator {
  const adminDigest = digest(deps.adminKey);
  // Token secrets start with "rk_": unless the admin key does too, they need no admin comparison.
  const adminLooksLikeToken = deps.adminKey.startsWith("rk_");
  return {
    authenticate(secret, environment) {
      if ((adminLooksLikeToken || !secret.startsWith("rk_")) && timingSafeEqual(digest(secret), adminDigest)) {
        return { kind: "admin" };
      }
      if (!deps.tokens) throw invalidCredentials();
      return deps.tokens.authenticate(secret, environment);
    },
  };
}

export interface EdgeDeps {
  authenticator: Authenticator;
  environments: { require(name: string): Environment | Promise<Environment> };
  validator: Validator;
  logger: Logger;
}

function readEnvironment(headers: Headers): string {
  const raw = headers.get(environmentHeader);
  // gRPC drops a metadata value that is not printable ASCII before it reaches the edge.
  if (raw === null) throw invalidEnvironment("metadata is missing or not printable ASCII");
  // Headers joins repeated values with ", ".
  if (raw.includes(",")) throw invalidEnvironment("must be sent exactly once");
  return parseEnvironmentName(raw);
}

const bearerSecret = /^[\x21-\x7e]+$/;

function readBearer(headers: Headers): string {
  const value = headers.get("authorization");
  const secret =
    value !== null && value.length > 7 && value.slice(0, 7).toLowerCase() === "bearer " ? value.slice(7) : "";
  if (!bearerSecret.test(secret)) {
    throw new RoomkeyError(
      "unauthenticated",
      "CREDENTIALS_MISSING",
      "authorization: metadata `authorization: Bearer <admin key or API token>` is required",
    );
  }
  return secret;
}

function authorize(policy: MethodPolicy, principal: Principal, method: DescMethod): void {
  if (principal.kind === "admin") return;
  if (policy.access === "admin") {
    throw new RoomkeyError("permission_denied", "ADMIN_KEY_REQUIRED", `${method.name} needs the admin key`);
  }
  if (!principal.scopes.has(policy.access)) {
    throw new RoomkeyError(
      "permission_denied",
      "SCOPE_MISSING",
      `${method.name} needs scope ${policy.access}, which this token lacks`,
      { scope: policy.access },
    );
  }
}

/**
 * The edge every call of the three services passes, whatever the transport:
 * environment metadata, authentication, access policy, environment existence,
 * then the request's protovalidate rules. It sets the typed call context and
 * maps every failure to a status in one place.
 */
export function createEdge(deps: EdgeDeps) {
  const { authenticator, environments, validator, logger } = deps;
  let inflight = 0;
  let stopped = false;
  const idleWaiters: (() => void)[] = [];

  function leave(): void {
    inflight--;
    if (inflight === 0) for (const resolve of idleWaiters.splice(0)) resolve();
  }

  /** Resolves once no call is in flight: shutdown waits for this. */
  function idle(): Promise<void> {
    return inflight === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
  }

  function validate(method: DescMethod, request: Message): void {
    const result = validator.validate(method.input, request);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    const violations = result.violations.map((v) => ({ field: pathToString(v.field), description: v.message }));
    const [first] = violations;
    const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : "";
    throw new InvalidArgumentError(`invalid request: ${first?.field}: ${first?.description}${more}`, violations);
  }

  /**
   * Admits a call, or throws why not. Answers without a promise when nothing
   * needs I/O (a cached token, a known environment): every call passes here.
   */
  function admit(
    method: DescMethod,
    policy: MethodPolicy,
    ctx: HandlerContext,
    request: Message,
  ): CallContext | Promise<CallContext> {
    // A keep-alive HTTP connection can still carry new calls after close(): refuse them.
    if (stopped) {
      throw new RoomkeyError("unavailable", "SHUTTING_DOWN", "the server is shutting down; retry on another replica");
    }
    const environment = readEnvironment(ctx.requestHeader);
    const authenticated = authenticator.authenticate(readBearer(ctx.requestHeader), environment);
    const admitted = (principal: Principal): CallContext | Promise<CallContext> => {
      authorize(policy, principal, method);
      const found = policy.environment === "existing" ? environments.require(environment) : undefined;
      const finish = (): CallContext => {
        validate(method, request);
        const call: CallContext = { environment, principal };
        ctx.values.set(callContextKey, call);
        return call;
      };
      return found instanceof Promise ? found.then(finish) : finish();
    };
    return authenticated instanceof Promise ? authenticated.then(admitted) : admitted(authenticated);
  }

  /** An access log line per call at debug level (never the request, never a credential). */
  const accessLog = logger.isLevelEnabled("debug");

  function logCall(method: DescMethod, ctx: HandlerContext, started: number, error: ConnectError | undefined): void {
    const call = ctx.values.get(callContextKey);
    logger.debug(
      {
        method: `${method.parent.typeName}/${method.name}`,
        environment: call?.environment,
        principal: call ? (call.principal.kind === "admin" ? "admin" : call.principal.tokenId) : undefined,
        code: error ? Code[error.code] : "OK",
        ms: Date.now() - started,
      },
      "call",
    );
  }

  function wrapMethod(method: DescMethod, impl: (req: Message, ctx: HandlerContext) => unknown) {
    const policy = policyOf(method);
    const fail = (error: unknown) => toConnectError(error, logger.child({ method: method.name }));
    if (method.methodKind === "unary") {
      // Not async: a call that needs no I/O completes without a promise or a microtask of its own.
      return (request: Message, ctx: HandlerContext): unknown => {
        inflight++;
        const started = accessLog ? Date.now() : 0;
        const done = (failure?: ConnectError) => {
          if (accessLog) logCall(method, ctx, started, failure);
          leave();
        };
        const failed = (error: unknown): never => {
          const failure = fail(error);
          done(failure);
          throw failure;
        };
        try {
          const admitted = admit(method, policy, ctx, request);
          const result = admitted instanceof Promise ? admitted.then(() => impl(request, ctx)) : impl(request, ctx);
          if (!(result instanceof Promise)) {
            done();
            return result;
          }
          return result.then((response: unknown) => {
            done();
            return response;
          }, failed);
        } catch (error) {
          return failed(error);
        }
      };
    }
    if (method.methodKind === "server_streaming") {
      return async function* (request: Message, ctx: HandlerContext) {
        inflight++;
        const started = Date.now();
        let failure: ConnectError | undefined;
        try {
          const admitted = admit(method, policy, ctx, request);
          if (admitted instanceof Promise) await admitted;
          yield* impl(request, ctx) as AsyncIterable<unknown>;
        } catch (error) {
          failure = fail(error);
          throw failure;
        } finally {
          if (accessLog) logCall(method, ctx, started, failure);
          leave();
        }
      };
    }
    throw new Error(`${method.parent.typeName}/${method.name}: ${method.methodKind} methods are not supported`);
  }

  /** The service's implementation behind the edge; shared by every transport. */
  function wrap<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImpl<S> {
    const table = impl as unknown as Record<string, (req: Message, ctx: HandlerContext) => unknown>;
    const wrapped: Record<string, unknown> = {};
    for (const method of service.methods) {
      const handler = table[method.localName];
      if (!handler) throw new Error(`${service.typeName}/${method.name} has no implementation`);
      wrapped[method.localName] = wrapMethod(method, handler.bind(impl));
    }
    return wrapped as ServiceImpl<S>;
  }

  /** From now on every call is refused UNAVAILABLE; calls already admitted finish. */
  function stop(): void {
    stopped = true;
  }

  return { wrap, idle, stop };
}
