import type { DescMethod } from "@bufbuild/protobuf";

/** The scopes a token may hold; the contract lists them too (CreateTokenRequest.scopes), and test/unit/scopes.test.ts keeps the two the same. */
export const scopes = [
  "environment:read",
  "environment:write",
  "tokens:read",
  "tokens:write",
  "tokens:verify",
  "accounts:read",
  "accounts:write",
  "accounts:credentials",
  "audit:read",
] as const;
export type Scope = (typeof scopes)[number];

/**
 * Who may call a method, and whether the edge requires its environment to be
 * active (`existing`), or leaves that to the method (`any`: CreateEnvironment
 * makes it, DeleteEnvironment also finishes an interrupted delete). The admin
 * key passes every access check.
 */
export interface MethodPolicy {
  access: "admin" | Scope;
  environment: "existing" | "any";
  /**
   * Whether a connect session may call it: only what finishing one
   * connection needs. The method then limits the session to its own
   * integrations and account.
   */
  session?: true;
}

const existing = (access: MethodPolicy["access"]): MethodPolicy => ({ access, environment: "existing" });
/** A method a connect session may call too. */
const forSessions = (access: Scope): MethodPolicy => ({ access, environment: "existing", session: true });

/** The scope table (README "Access"); keyed by `<service>/<method>`. */
export const methodPolicies: Readonly<Record<string, MethodPolicy>> = {
  "roomkey.v1.EnvironmentService/CreateEnvironment": { access: "admin", environment: "any" },
  "roomkey.v1.EnvironmentService/GetEnvironment": existing("environment:read"),
  "roomkey.v1.EnvironmentService/UpdateEnvironment": existing("environment:write"),
  "roomkey.v1.EnvironmentService/ListEnvironments": existing("admin"),
  "roomkey.v1.EnvironmentService/DeleteEnvironment": { access: "admin", environment: "any" },
  "roomkey.v1.EnvironmentService/PutIntegration": existing("environment:write"),
  "roomkey.v1.EnvironmentService/GetIntegration": existing("environment:read"),
  "roomkey.v1.EnvironmentService/ListIntegrations": existing("environment:read"),
  "roomkey.v1.EnvironmentService/DeleteIntegration": existing("environment:write"),
  "roomkey.v1.EnvironmentService/CreateWebhookEndpoint": existing("environment:write"),
  "roomkey.v1.EnvironmentService/GetWebhookEndpoint": existing("environment:read"),
  "roomkey.v1.EnvironmentService/ListWebhookEndpoints": existing("environment:read"),
  "roomkey.v1.EnvironmentService/UpdateWebhookEndpoint": existing("environment:write"),
  "roomkey.v1.EnvironmentService/DeleteWebhookEndpoint": existing("environment:write"),
  "roomkey.v1.EnvironmentService/RotateWebhookEndpointSecret": existing("environment:write"),
  "roomkey.v1.EnvironmentService/ListWebhookDeliveries": existing("environment:read"),
  "roomkey.v1.EnvironmentService/RedeliverWebhookEvent": existing("environment:write"),
  "roomkey.v1.EnvironmentService/DiffIntegrations": existing("admin"),
  "roomkey.v1.EnvironmentService/PromoteIntegrations": existing("admin"),
  "roomkey.v1.EnvironmentService/ListAuditEvents": existing("audit:read"),
  // The metadata names an environment, as for every call; these report and act on all of them.
  "roomkey.v1.EnvironmentService/GetMasterKeyStatus": existing("admin"),
  "roomkey.v1.EnvironmentService/RewrapDataKeys": existing("admin"),
  "roomkey.v1.TokenService/CreateToken": existing("tokens:write"),
  "roomkey.v1.TokenService/GetToken": existing("tokens:read"),
  "roomkey.v1.TokenService/ListTokens": existing("tokens:read"),
  "roomkey.v1.TokenService/RevokeToken": existing("tokens:write"),
  "roomkey.v1.TokenService/RotateToken": existing("tokens:write"),
  "roomkey.v1.TokenService/VerifyToken": existing("tokens:verify"),
  "roomkey.v1.AccountService/ConnectAccount": forSessions("accounts:write"),
  "roomkey.v1.AccountService/StartOAuthConnection": forSessions("accounts:write"),
  "roomkey.v1.AccountService/CompleteOAuthConnection": forSessions("accounts:write"),
  "roomkey.v1.AccountService/GetAccount": forSessions("accounts:read"),
  "roomkey.v1.AccountService/ListAccounts": existing("accounts:read"),
  "roomkey.v1.AccountService/UpdateAccount": existing("accounts:write"),
  "roomkey.v1.AccountService/DeleteAccount": existing("accounts:write"),
  "roomkey.v1.AccountService/RefreshAccountCredentials": existing("accounts:write"),
  "roomkey.v1.AccountService/GetAccountCredentials": existing("accounts:credentials"),
  "roomkey.v1.AccountService/WatchAccounts": existing("accounts:read"),
  "roomkey.v1.AccountService/CreateConnectSession": existing("accounts:write"),
  "roomkey.v1.AccountService/GetConnectSession": forSessions("accounts:read"),
  "roomkey.v1.AccountService/RevokeConnectSession": existing("accounts:write"),
};

/** The methods a connect session may call, as `<service>/<method>` (their HTTP paths, less the leading `/`). */
export const sessionMethodKeys = Object.entries(methodPolicies)
  .filter(([, policy]) => policy.session)
  .map(([key]) => key);

/** The same methods by name, for the messages that say so. */
export const sessionMethodNames = sessionMethodKeys.map((key) => key.slice(key.indexOf("/") + 1));

/** The policy of a method; a method without one is a programming error caught at start-up. */
export function policyOf(method: DescMethod): MethodPolicy {
  const policy = methodPolicies[`${method.parent.typeName}/${method.name}`];
  if (!policy) throw new Error(`no access policy for ${method.parent.typeName}/${method.name}`);
  return policy;
}

const kib = 1024;

/**
 * The largest request most methods carry: ids, names, a page token, a
 * secret. A request over its method's limit is refused RESOURCE_EXHAUSTED
 * before it is decoded, so a caller cannot make the server decode megabytes.
 */
export const defaultMaxRequestBytes = 16 * kib;

/**
 * Methods whose requests legitimately carry more, each with room over the
 * most its proto rules allow: 64 labels of up to 63 + 256 characters are
 * about 21 KiB; an OAuth2 integration with 100 scopes of 256 characters and 32
 * authorization parameters of 128 + 1024 is about 75 KiB; 1,000 account ids
 * are about 28 KiB.
 */
const requestLimits: Readonly<Record<string, number>> = {
  "roomkey.v1.EnvironmentService/PutIntegration": 128 * kib,
  "roomkey.v1.AccountService/ConnectAccount": 64 * kib,
  "roomkey.v1.AccountService/StartOAuthConnection": 64 * kib,
  "roomkey.v1.AccountService/UpdateAccount": 64 * kib,
  "roomkey.v1.AccountService/WatchAccounts": 64 * kib,
};

/** The largest request any method accepts: the transports refuse anything bigger before reading it. */
export const largestRequestBytes = Math.max(defaultMaxRequestBytes, ...Object.values(requestLimits));

/** The request size limit of a method (its encoded message, after decompression). */
export function maxRequestBytes(method: DescMethod): number {
  return requestLimits[`${method.parent.typeName}/${method.name}`] ?? defaultMaxRequestBytes;
}
