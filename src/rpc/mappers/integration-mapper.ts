import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  AuthType as DomainAuthType,
  ClientAuthMethod as DomainClientAuthMethod,
  CredentialPlacement as DomainPlacement,
  IntegrationInput,
  IntegrationView,
} from "../../domain/integrations/integrations.js";
import { AuthType } from "../../gen/roomkey/v1/common_pb.js";
import {
  ClientAuthMethod,
  CredentialPlacement,
  type Integration as IntegrationProto,
  type IntegrationSchema,
} from "../../gen/roomkey/v1/environment_service_pb.js";
import { toTimestamp } from "./time.js";

const authTypes = new Map<AuthType, DomainAuthType>([
  [AuthType.API_KEY, "api_key"],
  [AuthType.BASIC, "basic"],
  [AuthType.OAUTH2, "oauth2"],
]);

const placements = new Map<CredentialPlacement, DomainPlacement>([
  [CredentialPlacement.BEARER, "bearer"],
  [CredentialPlacement.HEADER, "header"],
  [CredentialPlacement.QUERY, "query"],
  [CredentialPlacement.BASIC, "basic"],
]);

const clientAuthMethods = new Map<ClientAuthMethod, DomainClientAuthMethod>([
  [ClientAuthMethod.CLIENT_SECRET_BASIC, "client_secret_basic"],
  [ClientAuthMethod.CLIENT_SECRET_POST, "client_secret_post"],
]);

function reverse<K, V>(map: Map<K, V>): Map<V, K> {
  return new Map([...map].map(([k, v]) => [v, k]));
}

const authTypesBack = reverse(authTypes);

/** A domain auth type as its proto enum value. */
export function authTypeToProto(authType: DomainAuthType): AuthType {
  return authTypesBack.get(authType) ?? AuthType.UNSPECIFIED;
}
const placementsBack = reverse(placements);
const clientAuthMethodsBack = reverse(clientAuthMethods);

/** A domain credential placement as its proto enum value. */
export function placementToProto(placement: DomainPlacement): CredentialPlacement {
  return placementsBack.get(placement) ?? CredentialPlacement.UNSPECIFIED;
}

/** A domain client authentication method as its proto enum value. */
export function clientAuthMethodToProto(method: DomainClientAuthMethod): ClientAuthMethod {
  return clientAuthMethodsBack.get(method) ?? ClientAuthMethod.UNSPECIFIED;
}

/** Request to domain. The request passed validation, so enums are defined and required parts present. */
export function integrationFromProto(integration: IntegrationProto): IntegrationInput {
  const authType = authTypes.get(integration.authType) ?? "api_key";
  const check = integration.credentialCheck;
  const input: IntegrationInput = {
    name: integration.name,
    displayName: integration.displayName,
    authType,
    credentialCheck: {
      url: check?.url ?? "",
      method: check?.method === "POST" ? "POST" : "GET",
      placement:
        placements.get(check?.placement ?? CredentialPlacement.UNSPECIFIED) ??
        (authType === "basic" ? "basic" : "bearer"),
      parameterName: check?.parameterName ?? "",
      accountIdPath: check?.accountIdPath ?? "",
      accountNamePath: check?.accountNamePath ?? "",
    },
  };
  const oauth2 = integration.oauth2;
  if (oauth2) {
    input.oauth2 = {
      authorizationUrl: oauth2.authorizationUrl,
      tokenUrl: oauth2.tokenUrl,
      clientId: oauth2.clientId,
      clientSecret: oauth2.clientSecret,
      scopes: [...oauth2.scopes],
      // RFC 9700: PKCE always, unless the provider refuses it (the old `pkce` flag is ignored).
      pkce: !oauth2.disablePkce,
      ...(oauth2.disablePkce ? { disablePkce: true } : {}),
      clientAuthMethod: clientAuthMethods.get(oauth2.clientAuthMethod) ?? "client_secret_basic",
      authorizationParams: { ...oauth2.authorizationParams },
      scopeSeparator: oauth2.scopeSeparator === "" ? " " : oauth2.scopeSeparator,
      ...(oauth2.issuer === "" ? {} : { issuer: oauth2.issuer }),
      ...(oauth2.revocationUrl === "" ? {} : { revocationUrl: oauth2.revocationUrl }),
    };
  }
  return input;
}

export function integrationToProto(view: IntegrationView): MessageInitShape<typeof IntegrationSchema> {
  const check = view.credentialCheck;
  return {
    name: view.name,
    displayName: view.displayName,
    authType: authTypesBack.get(view.authType),
    oauth2: view.oauth2 && {
      authorizationUrl: view.oauth2.authorizationUrl,
      tokenUrl: view.oauth2.tokenUrl,
      clientId: view.oauth2.clientId,
      clientSecretSet: view.oauth2.clientSecretSet,
      scopes: view.oauth2.scopes,
      pkce: !view.oauth2.disablePkce,
      disablePkce: view.oauth2.disablePkce === true,
      clientAuthMethod: clientAuthMethodsBack.get(view.oauth2.clientAuthMethod),
      authorizationParams: view.oauth2.authorizationParams,
      scopeSeparator: view.oauth2.scopeSeparator,
      issuer: view.oauth2.issuer ?? "",
      revocationUrl: view.oauth2.revocationUrl ?? "",
    },
    credentialCheck: {
      url: check.url,
      method: check.method,
      placement: placementsBack.get(check.placement),
      parameterName: check.parameterName,
      accountIdPath: check.accountIdPath,
      accountNamePath: check.accountNamePath,
    },
    createTime: toTimestamp(view.createTime),
    updateTime: toTimestamp(view.updateTime),
  };
}
