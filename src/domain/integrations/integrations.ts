export type AuthType = "api_key" | "basic" | "oauth2";
export type ClientAuthMethod = "client_secret_basic" | "client_secret_post";
export type CredentialPlacement = "bearer" | "header" | "query" | "basic";

export interface OAuth2Settings {
  authorizationUrl: string;
  tokenUrl: string;
  clientId: string;
  scopes: string[];
  /** Whether PKCE S256 was asked for (before it became the default); see `disablePkce`. */
  pkce: boolean;
  /** PKCE S256 is used unless this is set (RFC 9700): for a provider that refuses `code_challenge`. */
  disablePkce?: boolean;
  clientAuthMethod: ClientAuthMethod;
  authorizationParams: Record<string, string>;
  scopeSeparator: string;
  /** The issuer an authorization response's `iss` must equal (RFC 9207); empty: none is accepted. */
  issuer?: string;
  /** The token revocation endpoint (RFC 7009), called after DeleteAccount. */
  revocationUrl?: string;
}

export interface CredentialCheck {
  url: string;
  method: "GET" | "POST";
  placement: CredentialPlacement;
  parameterName: string;
  accountIdPath: string;
  accountNamePath: string;
}

/** An integration as stored: the client secret only in sealed form. */
export interface Integration {
  name: string;
  displayName: string;
  authType: AuthType;
  oauth2?: OAuth2Settings & { sealedClientSecret?: string };
  credentialCheck: CredentialCheck;
  createTime: Date;
  updateTime: Date;
  version: number;
}

/** What PutIntegration supplies: the client secret in plain text, once. */
export interface IntegrationInput {
  name: string;
  displayName: string;
  authType: AuthType;
  oauth2?: OAuth2Settings & { clientSecret: string };
  credentialCheck: CredentialCheck;
}

/** An integration as shown to callers: whether a secret is set, never the secret. */
export type IntegrationView = Omit<Integration, "oauth2"> & {
  oauth2?: OAuth2Settings & { clientSecretSet: boolean };
};

export function toView(integration: Integration): IntegrationView {
  const { oauth2, ...rest } = integration;
  if (!oauth2) return rest;
  const { sealedClientSecret, ...settings } = oauth2;
  return { ...rest, oauth2: { ...settings, clientSecretSet: sealedClientSecret !== undefined } };
}
