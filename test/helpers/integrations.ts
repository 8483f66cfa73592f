import type { MessageInitShape } from "@bufbuild/protobuf";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { CredentialPlacement, type IntegrationSchema } from "../../src/gen/roomkey/v1/environment_service_pb.js";

type IntegrationInit = MessageInitShape<typeof IntegrationSchema>;

/** An API key integration checked against a provider of test/helpers/api-key-provider.ts (`GET /me`, bearer). */
export function apiKeyIntegration(name: string, providerUrl: string): IntegrationInit {
  return {
    name,
    authType: AuthType.API_KEY,
    credentialCheck: {
      url: `${providerUrl}/me`,
      placement: CredentialPlacement.BEARER,
      accountIdPath: "data.id",
      accountNamePath: "data.profile.name",
    },
  };
}

/** An OAuth 2.0 integration with PKCE against test/helpers/oauth-provider.ts, checked at its userinfo endpoint. */
export function oauthIntegration(name: string, issuer: string, clientSecret: string): IntegrationInit {
  return {
    name,
    authType: AuthType.OAUTH2,
    oauth2: {
      authorizationUrl: `${issuer}/authorize`,
      tokenUrl: `${issuer}/token`,
      clientId: "roomkey-test",
      clientSecret,
      scopes: ["openid", "contacts.read"],
      pkce: true,
    },
    credentialCheck: {
      url: `${issuer}/userinfo`,
      placement: CredentialPlacement.BEARER,
      accountIdPath: "sub",
      accountNamePath: "name",
    },
  };
}
