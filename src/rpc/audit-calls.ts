/**
 * What the edge writes to the audit log about a call, in one table: which
 * calls are recorded, and which of a request's (or a created resource's)
 * fields name what the call acted on. Entries are built from these fields
 * alone, never from a request body, so no secret can reach one.
 */
import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { isEnvironmentName } from "../domain/environments/environment-name.js";
import { RoomkeyError } from "../domain/errors.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import type { CallContext } from "./call-context.js";

/** The metadata that carries a call's request id, both ways. */
export const requestIdHeader = "x-request-id";
const maxRequestIdLength = 128;
const printable = /^[\x20-\x7e]+$/;

/**
 * The call's request id: the caller's `x-request-id` when it is printable
 * ASCII of at most 128 characters, else a new one, written back into the
 * request headers so that everything later in the call reads the same.
 */
export function ensureRequestId(headers: Headers): string {
  const given = headers.get(requestIdHeader);
  if (given !== null && given.length <= maxRequestIdLength && printable.test(given)) return given;
  const made = randomUUID();
  headers.set(requestIdHeader, made);
  return made;
}

/** Methods recorded though they change nothing: reading decrypted credentials is audited too. */
const auditedReads = new Set(["roomkey.v1.AccountService/GetAccountCredentials"]);

/** Whether the edge records calls of this method: unary methods with side effects, and `auditedReads`. */
export function isAudited(method: DescMethod): boolean {
  if (method.methodKind !== "unary") return false;
  return (
    method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
    auditedReads.has(`${method.parent.typeName}/${method.name}`)
  );
}

/** gRPC's canonical code name (PERMISSION_DENIED), or OK. */
export function outcomeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The ErrorInfo reason of a failure, from the domain error or the status it became. */
export function reasonOf(error: unknown, converted?: ConnectError): string {
  if (error instanceof RoomkeyError) return error.reason;
  for (const detail of converted?.details ?? []) {
    if ("desc" in detail && detail.desc === ErrorInfoSchema) {
      const reason = (detail.value as { reason?: unknown }).reason;
      return typeof reason === "string" ? reason : "";
    }
  }
  return "";
}

/** A string at `path` in a message (or plain object), or "". */
function text(value: unknown, ...path: string[]): string {
  let at = value;
  for (const key of path) {
    if (at === null || typeof at !== "object") return "";
    at = (at as Record<string, unknown>)[key];
  }
  return typeof at === "string" ? at : "";
}

type Facts = { request: unknown; response: unknown; call: CallContext };
/** An entry of the call in another environment's log as well (the source of a promotion). */
type AlsoIn = { environment: string; resource: string; details: Record<string, string> };
type Describe = (facts: Facts) => { resource: string; details?: Record<string, string>; alsoIn?: AlsoIn };

const environmentName: Describe = ({ call }) => ({ resource: call.environment });
const requestId: Describe = ({ request }) => ({ resource: text(request, "id") });

/** What each recorded method acted on; a method not listed names its request's `id`. */
const described: Readonly<Record<string, Describe>> = {
  "roomkey.v1.EnvironmentService/CreateEnvironment": environmentName,
  "roomkey.v1.EnvironmentService/UpdateEnvironment": environmentName,
  "roomkey.v1.EnvironmentService/DeleteEnvironment": environmentName,
  "roomkey.v1.EnvironmentService/PutIntegration": ({ request }) => ({ resource: text(request, "integration", "name") }),
  "roomkey.v1.EnvironmentService/DeleteIntegration": ({ request }) => ({ resource: text(request, "name") }),
  "roomkey.v1.EnvironmentService/CreateWebhookEndpoint": ({ response }) => ({
    resource: text(response, "endpoint", "id"),
  }),
  "roomkey.v1.EnvironmentService/UpdateWebhookEndpoint": ({ request }) => ({
    resource: text(request, "endpoint", "id"),
  }),
  "roomkey.v1.EnvironmentService/DeleteWebhookEndpoint": requestId,
  "roomkey.v1.EnvironmentService/RotateWebhookEndpointSecret": requestId,
  "roomkey.v1.EnvironmentService/RedeliverWebhookEvent": ({ request }) => ({ resource: text(request, "eventId") }),
  // The environment promoted into; where from is a detail. The source's log records the crossing too.
  "roomkey.v1.EnvironmentService/PromoteIntegrations": ({ request, call }) => ({
    resource: call.environment,
    details: { from_environment: text(request, "fromEnvironment") },
    alsoIn: {
      environment: text(request, "fromEnvironment"),
      resource: call.environment,
      details: { to_environment: call.environment },
    },
  }),
  "roomkey.v1.EnvironmentService/RewrapDataKeys": environmentName,
  "roomkey.v1.TokenService/CreateToken": ({ response }) => ({ resource: text(response, "token", "id") }),
  "roomkey.v1.TokenService/RevokeToken": requestId,
  "roomkey.v1.TokenService/RotateToken": requestId,
  "roomkey.v1.AccountService/ConnectAccount": ({ request, response }) => ({
    resource: text(response, "account", "id") || text(request, "accountId"),
  }),
  "roomkey.v1.AccountService/StartOAuthConnection": ({ request }) => ({
    resource: text(request, "accountId") || text(request, "integration"),
  }),
  "roomkey.v1.AccountService/CompleteOAuthConnection": ({ response }) => ({
    resource: text(response, "account", "id"),
  }),
  "roomkey.v1.AccountService/UpdateAccount": ({ request }) => ({ resource: text(request, "account", "id") }),
  "roomkey.v1.AccountService/DeleteAccount": requestId,
  "roomkey.v1.AccountService/RefreshAccountCredentials": requestId,
  "roomkey.v1.AccountService/GetAccountCredentials": requestId,
  "roomkey.v1.AccountService/CreateConnectSession": ({ response }) => ({
    resource: text(response, "session", "id"),
  }),
  "roomkey.v1.AccountService/RevokeConnectSession": requestId,
};

/** Methods the table names explicitly (a test checks every recorded method has a deliberate entry). */
export const describedMethods: ReadonlySet<string> = new Set(Object.keys(described));

const maxResourceLength = 128;

/** The resource a call acted on and its non-secret details; `response` is undefined when it failed. */
export function describeCall(
  method: DescMethod,
  request: unknown,
  response: unknown,
  call: CallContext,
): { resource: string; details: Record<string, string>; alsoIn?: AlsoIn } {
  const describe = described[`${method.parent.typeName}/${method.name}`] ?? requestId;
  const { resource, details = {}, alsoIn } = describe({ request, response, call });
  const given = (d: Record<string, string>) =>
    Object.fromEntries(Object.entries(d).filter(([, value]) => value !== ""));
  const entry = { resource: resource.slice(0, maxResourceLength), details: given(details) };
  // Only a well-formed name of another environment (the recorder then writes only where it exists).
  if (!alsoIn || alsoIn.environment === call.environment || !isEnvironmentName(alsoIn.environment)) return entry;
  return {
    ...entry,
    alsoIn: { ...alsoIn, resource: alsoIn.resource.slice(0, maxResourceLength), details: given(alsoIn.details) },
  };
}
