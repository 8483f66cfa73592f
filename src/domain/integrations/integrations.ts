export type AuthType = "api_key" | "basic" | "oauth2";
export type ClientAuthMethod = "client_secret_basic" | "client_secret_post";
export type CredentialPlacement = "bearer" | "header" | "query" | "basic";

export interface OAuth2Settings {
  authorizationUrl: string;
  tokenUrl: string;
  clientId: string;
  scopes: string[];
  pkce: boolean;
  clientAuthMethod: ClientAuthMethod;
  authorizationParams: Record<string, string>;
  scopeSeparator: string;
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
