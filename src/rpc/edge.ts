import type { DescMethod, DescService, Message } from "@bufbuild/protobuf";
import { pathToString, type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import type { Validator } from "@bufbuild/protovalidate";
import { Code, type ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AuditFacts } from "../domain/audit/audit-recorder.js";
import {
  environmentHeader,
  invalidEnvironment,
  isEnvironmentName,
  parseEnvironmentName,
} from "../domain/environments/environment-name.js";
import type { Environment } from "../domain/environments/environments.js";
import { type FieldViolation, InvalidArgumentError, RoomkeyError } from "../domain/errors.js";
import { describeCall, ensureRequestId, isAudited, outcomeName, reasonOf, requestIdHeader } from "./audit-calls.js";
import type { Authenticator } from "./authentication.js";
import { type CallContext, callContextKey, type Principal } from "./call-context.js";
import { codeOf, toConnectError } from "./errors.js";
import type { FailureThrottle } from "./failure-throttle.js";
import { type MethodPolicy, policyOf, sessionMethodNames } from "./method-policy.js";

export type Edge = ReturnType<typeof createEdge>;

export interface EdgeDeps {
  authenticator: Authenticator;
  /**
   * Failed authentications per peer. A throttled peer gets only what memory
   * admits (the admin key, a cached token) or what is known to exist (a real
   * token's hash); nothing it makes up costs a check.
   */
  throttle?: FailureThrottle;
  environments: { require(name: string): Environment | Promise<Environment> };
  /** Stops at the first violation: the cheap check every request passes. */
  validator: Validator;
  /** Reports every violation; run only on invalid requests small enough to afford it. */
  fullValidator?: Validator;
  logger: Logger;
  /** Told of every call's end and of every refused authentication (metrics). */
  observer?: EdgeObserver;
  /** roomkey's own public origin (ROOMKEY_PUBLIC_URL's): the hosted page's calls come from it. */
  ownOrigin?(): string | undefined;
  /** The environments' audit logs: calls that change something, and refused authentications. */
  audit?: EdgeAudit;
}

/** Where the edge writes audit entries (domain/audit/audit-recorder.ts). */
export interface EdgeAudit {
  /** An admitted call's entry, awaited before the call answers. */
  record(environment: string, facts: AuditFacts): Promise<void>;
  /** A refusal at admission: buffered within a bound, never awaited; `aggregate` merges refusals with that key. */
  note(environment: string, facts: AuditFacts, aggregate?: string): void;
  /** Whether the environment exists, from memory alone: refusals naming any other are not recorded. */
  knows(environment: string): boolean;
}

export interface EdgeObserver {
  /** A call ended (`code` undefined: OK), or was refused before its handler ran. */
  call(method: DescMethod, code: Code | undefined, seconds: number): void;
  /** A call refused for its credentials; a token of another environment also names both environments. */
  authenticationFailed(reason: string, wrong?: { requested: string; token: string }): void;
}

/**
 * What a transport established before the handler runs: the call admitted
 * from its metadata and the request it then decoded, or why it was refused.
 * A transport that sets it decodes nothing before admission; one that does
 * not (an in-memory router in tests) is admitted by the handler itself.
 */
export type Admission = { call: CallContext; request: Message } | { error: unknown };

export const admissionKey = createContextKey<Admission | undefined>(undefined, {
  description: "roomkey admission",
});

/**
 * At most this many violations are reported, each field and description
 * clipped to `maxViolationBytes` of UTF-8 and all of them together to
 * `maxViolationsBytes`: with the message, an error's trailer stays well under
 * the 8 KiB of metadata gRPC clients accept by default, also once
 * `grpc-status-details-bin` is base64.
 */
export const maxReportedViolations = 20;
const maxViolationBytes = 200;
const maxViolationsBytes = 3_000;
/**
 * Listing every violation costs the validator time per element: past this
 * many list and map entries in a request only the first violation is reported.
 */
const maxElementsForFullValidation = 1_000;

/** `text` within `maxBytes` of UTF-8, cut at a character and marked with "…" when cut. */
export function clipBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let kept = "";
  let bytes = 0;
  const budget = maxBytes - 3; // "…" is 3 bytes
  for (const character of text) {
    const size = Buffer.byteLength(character);
    if (bytes + size > budget) break;
    kept += character;
    bytes += size;
  }
  return `${kept}…`;
}

/** List and map entries in a message, nested ones included; stops counting past `limit`. */
export function countElements(message: ReflectMessage, limit: number): number {
  let count = 0;
  const visit = (m: ReflectMessage): void => {
    for (const field of m.fields) {
      if (count > limit) return;
      if (!m.isSet(field)) continue;
      if (field.fieldKind === "list") {
        const list = m.get(field);
        count += list.size;
        if (field.listKind === "message") for (const item of list) if (count <= limit) visit(item as ReflectMessage);
      } else if (field.fieldKind === "map") {
        const map = m.get(field);
        count += map.size;
        if (field.mapKind === "message")
          for (const value of map.values()) if (count <= limit) visit(value as ReflectMessage);
      } else if (field.fieldKind === "message") {
        visit(m.get(field));
      }
    }
  };
  visit(message);
  return count;
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

/** The bearer secret, or undefined when there is none of the right shape. */
function bearerOf(headers: Headers): string | undefined {
  const value = headers.get("authorization");
  const secret =
    value !== null && value.length > 7 && value.slice(0, 7).toLowerCase() === "bearer " ? value.slice(7) : "";
  return bearerSecret.test(secret) ? secret : undefined;
}

/** `roomkey.v1.TokenService/CreateToken`: how audit entries name a method. */
function fullName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** Who an audit entry says called. */
function actorOf(principal: Principal): Pick<AuditFacts, "actorKind" | "actorId"> {
  if (principal.kind === "admin") return { actorKind: "admin", actorId: "" };
  if (principal.kind === "token") return { actorKind: "token", actorId: principal.tokenId };
  return { actorKind: "connect_session", actorId: principal.session.id };
}

/** Sends the call's request id back in the response metadata (`x-request-id`). */
function echoRequestId(ctx: HandlerContext): void {
  const id = ctx.requestHeader.get(requestIdHeader);
  if (id !== null) ctx.responseHeader.set(requestIdHeader, id);
}

function principalName(principal: Principal): string {
  if (principal.kind === "admin") return "admin";
  return principal.kind === "token" ? principal.tokenId : principal.session.id;
}

function credentialsMissing(): RoomkeyError {
  return new RoomkeyError(
    "unauthenticated",
    "CREDENTIALS_MISSING",
    "authorization: metadata `authorization: Bearer <admin key or API token>` is required",
  );
}

function readBearer(headers: Headers): string {
  const secret = bearerOf(headers);
  if (secret === undefined) throw credentialsMissing();
  return secret;
}

const tooManyReason = "TOO_MANY_FAILED_AUTHENTICATIONS";

function tooManyFailures(waitSeconds: number): RoomkeyError {
  return new RoomkeyError(
    "resource_exhausted",
    tooManyReason,
    `authorization: too many failed authentications from this address; retry in ${waitSeconds} s`,
    { retry_after_seconds: String(waitSeconds) },
  );
}

/** Failures a throttle counts: credentials missing, unknown, expired, revoked, or of another environment. */
function isAuthenticationFailure(error: unknown): boolean {
  return (
    error instanceof RoomkeyError && (error.kind === "unauthenticated" || error.reason === "TOKEN_WRONG_ENVIRONMENT")
  );
}

const sessionMethodList = sessionMethodNames.join(", ");

function authorize(policy: MethodPolicy, principal: Principal, method: DescMethod): void {
  if (principal.kind === "admin") return;
  if (principal.kind === "session") {
    if (policy.session) return;
    throw new RoomkeyError(
      "permission_denied",
      "CONNECT_SESSION_NOT_ALLOWED",
      `${method.name} cannot be called with a connect session: it opens only ${sessionMethodList}`,
      { method: method.name },
    );
  }
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
 * A browser's call with a connect session must come from the session's
 * allowed origins, or from roomkey's own (the hosted page: its public URL's
 * origin, or, behind no proxy, the host the call was sent to). A call without an Origin (a server, an
 * app) is not a browser's.
 */
function checkOrigin(
  allowed: ReadonlySet<string>,
  headers: Headers,
  own: (() => string | undefined) | undefined,
): void {
  const origin = headers.get("origin");
  if (origin === null || allowed.has(origin) || origin === own?.()) return;
  try {
    if (new URL(origin).host === headers.get("host")) return;
  } catch {
    // Not a URL ("null" from a sandboxed frame): not an allowed origin.
  }
  throw new RoomkeyError(
    "permission_denied",
    "CONNECT_SESSION_ORIGIN",
    `origin: the connect session does not allow calls from ${origin.slice(0, 256)}`,
    { origin: origin.slice(0, 256) },
  );
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

  /**
   * The request's protovalidate rules. Valid requests pay for one fail-fast
   * pass. An invalid one is checked again in full when it is small enough, so
   * the caller learns every broken rule; the report is capped either way
   * (the first violations and their count), so neither the work nor the
   * error grows with the request.
   */
  function validate(method: DescMethod, request: Message): void {
    const result = validator.validate(method.input, request);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    let found = result.violations;
    let complete = false;
    const elements = countElements(reflect(method.input, request), maxElementsForFullValidation);
    if (deps.fullValidator && elements <= maxElementsForFullValidation) {
      const full = deps.fullValidator.validate(method.input, request);
      if (full.kind === "invalid") found = full.violations;
      complete = true;
    }
    const violations: FieldViolation[] = [];
    let bytes = 0;
    for (const v of found.slice(0, maxReportedViolations)) {
      const violation = {
        field: clipBytes(pathToString(v.field), maxViolationBytes),
        description: clipBytes(v.message, maxViolationBytes),
      };
      bytes += Buffer.byteLength(violation.field) + Buffer.byteLength(violation.description);
      if (violations.length > 0 && bytes > maxViolationsBytes) break;
      violations.push(violation);
    }
    const [first] = violations;
    const more = !complete
      ? " (only the first violation is reported for a request this large)"
      : found.length > violations.length
        ? ` (and ${found.length - 1} more; the first ${violations.length} are listed)`
        : found.length > 1
          ? ` (and ${found.length - 1} more)`
          : "";
    // A rule on the whole request (one of two fields, say) names no field.
    const where = first?.field ? `${first.field}: ` : "";
    throw new InvalidArgumentError(`invalid request: ${where}${first?.description}${more}`, violations);
  }

  /**
   * Admits a call from its metadata alone, or throws why not: environment,
   * credentials, access, the environment's existence. Transports call it
   * before they read the request body. Answers without a promise when
   * nothing needs I/O (a cached token, a known environment).
   */
  function admitCall(method: DescMethod, headers: Headers, peer?: string): CallContext | Promise<CallContext> {
    // A keep-alive HTTP connection can still carry new calls after close(): refuse them.
    if (stopped) {
      throw new RoomkeyError("unavailable", "SHUTTING_DOWN", "the server is shutting down; retry on another replica");
    }
    const policy = policyOf(method);
    const environment = readEnvironment(headers);
    const admitted = (principal: Principal): CallContext | Promise<CallContext> => {
      try {
        authorize(policy, principal, method);
        if (principal.kind === "session") checkOrigin(principal.session.allowedOrigins, headers, deps.ownOrigin);
      } catch (error) {
        noteForbidden(method, environment, principal, headers, peer, error);
        throw error;
      }
      const call: CallContext = peer === undefined ? { environment, principal } : { environment, principal, peer };
      const found = policy.environment === "existing" ? environments.require(environment) : undefined;
      return found instanceof Promise ? found.then(() => call) : call;
    };
    const throttle = deps.throttle;
    if (!throttle?.enabled || peer === undefined) {
      const authenticated = authenticator.authenticate(readBearer(headers), environment);
      return authenticated instanceof Promise ? authenticated.then(admitted) : admitted(authenticated);
    }
    // Each failure takes a token of the peer's bucket; a check that may fail holds one while it runs.
    const secret = bearerOf(headers);
    if (secret === undefined) {
      throttle.fail(peer);
      throw credentialsMissing();
    }
    // What memory admits (the admin key, a cached token) and real tokens' lookups cost the peer nothing.
    const remembered = authenticator.authenticateFromMemory(secret, environment);
    if (remembered) return admitted(remembered);
    if (authenticator.knownToExist(secret, environment)) {
      const authenticated = authenticator.authenticate(secret, environment);
      return authenticated instanceof Promise ? authenticated.then(admitted) : admitted(authenticated);
    }
    if (!throttle.take(peer)) throw tooManyFailures(throttle.blockedFor(peer) ?? 1);
    const settled = (principal: Principal) => {
      throttle.refund(peer);
      return admitted(principal);
    };
    const failed = (error: unknown): never => {
      if (!isAuthenticationFailure(error)) throttle.refund(peer);
      throw error;
    };
    try {
      const authenticated = authenticator.authenticate(secret, environment);
      return authenticated instanceof Promise ? authenticated.then(settled, failed) : settled(authenticated);
    } catch (error) {
      return failed(error);
    }
  }

  /**
   * A call refused for its access (a scope it lacks, a session not allowed,
   * the admin key needed): the environment's log holds it, with who tried. Buffered like
   * every refusal at admission: the request was not read, so it names no
   * resource.
   */
  function noteForbidden(
    method: DescMethod,
    environment: string,
    principal: Principal,
    headers: Headers,
    peer: string | undefined,
    error: unknown,
  ): void {
    const audit = deps.audit;
    if (!audit?.knows(environment)) return;
    const actor = actorOf(principal);
    const reason = reasonOf(error);
    // Like refusals of credentials: the same refusal, repeated within a flush, is one entry with a count.
    audit.note(
      environment,
      {
        ...actor,
        method: fullName(method),
        resource: "",
        requestId: headers.get(requestIdHeader) ?? "",
        outcome: outcomeName(codeOf(error)),
        reason,
        peer: peer ?? "",
        details: {},
      },
      ["forbidden", peer ?? "", reason, actor.actorId, fullName(method)].join("\u0000"),
    );
  }

  /**
   * A refused authentication, in the log of the environment the metadata
   * names when that environment exists (memory alone says so: a made-up
   * name costs nothing and creates no database). A throttled peer's
   * refusals add up in one entry per interval.
   */
  function noteRefusal(method: DescMethod, headers: Headers, peer: string | undefined, error: unknown): void {
    const audit = deps.audit;
    if (!audit || !(error instanceof RoomkeyError)) return;
    const throttled = error.reason === tooManyReason;
    if (!throttled && !isAuthenticationFailure(error)) return;
    const environment = headers.get(environmentHeader);
    if (environment === null || !isEnvironmentName(environment) || !audit.knows(environment)) return;
    const tokenEnvironment = error.reason === "TOKEN_WRONG_ENVIRONMENT" ? error.metadata?.token_environment : undefined;
    // A throttled peer's refusals share one entry whoever they claim to be: no hash of each one's secret.
    const secret = throttled ? undefined : bearerOf(headers);
    const actorId =
      secret === undefined ? undefined : authenticator.identify?.(secret, tokenEnvironment ?? environment);
    audit.note(
      environment,
      {
        actorKind: "unauthenticated",
        actorId: actorId ?? "",
        method: fullName(method),
        resource: "",
        requestId: headers.get(requestIdHeader) ?? "",
        outcome: outcomeName(codeOf(error)),
        reason: error.reason,
        peer: peer ?? "",
        details: tokenEnvironment ? { token_environment: tokenEnvironment } : {},
      },
      // One entry per flush for each peer the throttle refuses; else one per peer, reason, actor and method.
      throttled
        ? `throttled\u0000${peer ?? ""}`
        : ["refused", peer ?? "", error.reason, actorId ?? "", fullName(method)].join("\u0000"),
    );
  }

  function refused(method: DescMethod, started: number, error: unknown): never {
    const observer = deps.observer;
    if (observer) {
      observer.call(method, codeOf(error), (performance.now() - started) / 1000);
      if (error instanceof RoomkeyError && (isAuthenticationFailure(error) || error.reason === tooManyReason)) {
        const { requested_environment: requested, token_environment: token } = error.metadata ?? {};
        const wrong =
          error.reason === "TOKEN_WRONG_ENVIRONMENT" && requested && token ? { requested, token } : undefined;
        observer.authenticationFailed(error.reason, wrong);
      }
    }
    throw error;
  }

  const auditedMethods = new Map<DescMethod, boolean>();
  /** `isAudited`, remembered per method: admission asks on every call. */
  function audited(method: DescMethod): boolean {
    let known = auditedMethods.get(method);
    if (known === undefined) {
      known = isAudited(method);
      auditedMethods.set(method, known);
    }
    return known;
  }

  /**
   * `admitCall`, with refusals told to the observer and the audit log. Every
   * transport admits through this. It settles the call's request id first
   * (the caller's, or one made and written into `headers`) for a call the
   * audit log records or refuses.
   */
  function admit(method: DescMethod, headers: Headers, peer?: string): CallContext | Promise<CallContext> {
    // A call the log records gets one; another (VerifyToken, a read) only if its caller sent one, or once refused.
    if (audited(method) || headers.has(requestIdHeader)) ensureRequestId(headers);
    if (!deps.observer && !deps.audit) return admitCall(method, headers, peer);
    const started = performance.now();
    const reject = (error: unknown): never => {
      ensureRequestId(headers);
      noteRefusal(method, headers, peer, error);
      if (deps.observer) return refused(method, started, error);
      throw error;
    };
    try {
      const admitted = admitCall(method, headers, peer);
      return admitted instanceof Promise ? admitted.catch(reject) : admitted;
    } catch (error) {
      return reject(error);
    }
  }

  /**
   * The call as the transport admitted it, or admitted here (in-memory
   * transports); then the request is validated and the call context set.
   */
  function enter(method: DescMethod, ctx: HandlerContext, request: Message): Message | Promise<Message> {
    const admission = ctx.values.get(admissionKey);
    if (admission && "error" in admission) throw admission.error;
    const finish = (call: CallContext, message: Message): Message => {
      // Set before validation: from here on the call counts as admitted (see `ended`).
      ctx.values.set(callContextKey, call);
      validate(method, message);
      return message;
    };
    if (admission) return finish(admission.call, admission.request);
    const admitted = admit(method, ctx.requestHeader);
    return admitted instanceof Promise ? admitted.then((call) => finish(call, request)) : finish(admitted, request);
  }

  /** An access log line per call at debug level (never the request, never a credential). */
  const accessLog = logger.isLevelEnabled("debug");
  const { observer } = deps;
  const timed = accessLog || observer !== undefined;

  /**
   * A call ended: the access log and the observer. The observer counts here
   * only calls that were admitted (their call context is set); a refusal at
   * admission was counted by `admit`, whichever transport called it.
   */
  function ended(method: DescMethod, ctx: HandlerContext, started: number, failure?: ConnectError) {
    if (!timed) return;
    const seconds = (performance.now() - started) / 1000;
    if (accessLog) logCall(method, ctx, seconds, failure);
    if (observer && ctx.values.get(callContextKey) !== undefined) observer.call(method, failure?.code, seconds);
  }

  function logCall(method: DescMethod, ctx: HandlerContext, seconds: number, error: ConnectError | undefined): void {
    const call = ctx.values.get(callContextKey);
    logger.debug(
      {
        method: `${method.parent.typeName}/${method.name}`,
        environment: call?.environment,
        principal: call ? principalName(call.principal) : undefined,
        code: error ? Code[error.code] : "OK",
        ms: Math.round(seconds * 1000),
      },
      "call",
    );
  }

  function wrapMethod(method: DescMethod, impl: (req: Message, ctx: HandlerContext) => unknown) {
    // Every method needs a policy: a missing one fails at start-up, not on a call.
    policyOf(method);
    const fail = (error: unknown) => toConnectError(error, logger.child({ method: method.name }));
    if (method.methodKind === "unary") {
      const audit = deps.audit && isAudited(method) ? deps.audit : undefined;
      /** The call's entry, written before it answers; undefined when not recorded (or refused at admission). */
      const record = (
        ctx: HandlerContext,
        request: Message | undefined,
        response: unknown,
        error?: unknown,
        failure?: ConnectError,
      ): Promise<void> | undefined => {
        const call = audit ? ctx.values.get(callContextKey) : undefined;
        if (!audit || !call) return undefined;
        const { resource, details, alsoIn } = describeCall(method, request, response, call);
        const facts = {
          ...actorOf(call.principal),
          method: fullName(method),
          resource,
          requestId: ctx.requestHeader.get(requestIdHeader) ?? "",
          outcome: outcomeName(failure?.code),
          reason: failure ? reasonOf(error, failure) : "",
          peer: call.peer ?? "",
          details,
        };
        const recorded = audit.record(call.environment, facts);
        if (!alsoIn) return recorded;
        const { environment, ...there } = alsoIn;
        return Promise.all([recorded, audit.record(environment, { ...facts, ...there })]).then(() => undefined);
      };
      // Not async: a call that needs no I/O completes without a promise or a microtask of its own.
      return (request: Message, ctx: HandlerContext): unknown => {
        inflight++;
        const started = timed ? performance.now() : 0;
        let decoded: Message | undefined;
        const failed = (error: unknown): unknown => {
          const failure = fail(error);
          echoRequestId(ctx);
          const done = (): never => {
            ended(method, ctx, started, failure);
            leave();
            throw failure;
          };
          const recorded = record(ctx, decoded, undefined, error, failure);
          return recorded ? recorded.then(done) : done();
        };
        const succeeded = (response: unknown): unknown => {
          echoRequestId(ctx);
          const done = () => {
            ended(method, ctx, started);
            leave();
            return response;
          };
          const recorded = record(ctx, decoded, response);
          return recorded ? recorded.then(done) : done();
        };
        try {
          const entered = enter(method, ctx, request);
          const run = (req: Message) => {
            decoded = req;
            return impl(req, ctx);
          };
          const result = entered instanceof Promise ? entered.then(run) : run(entered);
          if (!(result instanceof Promise)) return succeeded(result);
          return result.then(succeeded, failed);
        } catch (error) {
          return failed(error);
        }
      };
    }
    if (method.methodKind === "server_streaming") {
      return async function* (request: Message, ctx: HandlerContext) {
        inflight++;
        const started = performance.now();
        let failure: ConnectError | undefined;
        try {
          const entered = enter(method, ctx, request);
          const admitted = entered instanceof Promise ? await entered : entered;
          echoRequestId(ctx);
          yield* impl(admitted, ctx) as AsyncIterable<unknown>;
        } catch (error) {
          failure = fail(error);
          echoRequestId(ctx);
          throw failure;
        } finally {
          ended(method, ctx, started, failure);
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

  return { wrap, admit, idle, stop };
}
