import type { GetAccountCredentialsResponse } from "../../client/index.js";
import { fields, time } from "../output.js";

/** An account's decrypted credential, field by field; what the API returned, nothing kept. */
export function credentialFields(response: GetAccountCredentialsResponse): string {
  const { credential } = response;
  const account: [string, string] = ["account", response.accountId];
  switch (credential.case) {
    case "apiKey":
      return fields([account, ["kind", "api key"], ["key", credential.value.key]]);
    case "basic":
      return fields([
        account,
        ["kind", "basic"],
        ["username", credential.value.username],
        ["password", credential.value.password],
      ]);
    case "oauth2":
      return fields([
        account,
        ["kind", "oauth2"],
        ["access token", credential.value.accessToken],
        ["token type", credential.value.tokenType],
        ["expires", time(credential.value.expireTime)],
        ["scopes", credential.value.scopes.join(" ")],
      ]);
    default:
      return fields([account, ["kind", "none"]]);
  }
}
