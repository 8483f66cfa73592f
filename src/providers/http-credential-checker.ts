import type { CheckCredential, CheckOutcome, CredentialChecker } from "../domain/accounts/credential-check.js";
import type { CredentialCheck } from "../domain/integrations/integrations.js";
import { callProvider, type ProviderCallOptions } from "./provider-call.js";
import { providerMessage, sanitized } from "./provider-message.js";

/** The most of a remote account's id or name that is kept: they are shown to callers as they are. */
const maxRemoteFieldChars = 256;

export type HttpCredentialCheckerOptions = ProviderCallOptions;

/** A value at a dot-separated path of parsed JSON, as a string; undefined if absent or not a scalar. */
export function valueAt(body: unknown, path: string): string | undefined {
  if (path === "") return undefined;
  let value: unknown = body;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

/** The provider's status and what it said, bounded, sanitized and with the credential masked, fit for a status reason. */
function summary(status: number, answer: { contentType: string; text: string }, secrets: string[]): string {
  const said = providerMessage(answer, secrets);
  return said === "" ? `the provider answered ${status}` : `the provider answered ${status}: ${said}`;
}

function secretsOf(credential: CheckCredential): string[] {
  switch (credential.kind) {
    case "api_key":
      return [credential.apiKey];
    case "basic":
      return [credential.username, credential.password];
    case "access_token":
      return [credential.accessToken];
  }
}

/** Checks credentials against the provider over HTTP(S) with the integration's verify request. */
export function createHttpCredentialChecker(options: HttpCredentialCheckerOptions): CredentialChecker {
  return {
    async check(check: CredentialCheck, credential: CheckCredential): Promise<CheckOutcome> {
      const url = new URL(check.url);
      const headers: Record<string, string> = { accept: "application/json" };
      if (credential.kind === "basic") {
        headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
      } else {
        const secret = credential.kind === "api_key" ? credential.apiKey : credential.accessToken;
        if (check.placement === "header") headers[check.parameterName.toLowerCase()] = secret;
        else if (check.placement === "query") url.searchParams.set(check.parameterName, secret);
        else headers.authorization = `Bearer ${secret}`;
      }
      const secrets = secretsOf(credential);
      const call = await callProvider(
        options,
        { url, method: check.method, headers },
        { kind: "credential_check", what: "the provider" },
        (response) => summary(response.status, response, secrets),
      );
      if (call.kind !== "answered") return call;
      const { response } = call;
      if (response.status < 200 || response.status >= 300) {
        return { kind: "refused", reason: summary(response.status, response, secrets) };
      }
      if (response.tooLarge) {
        return {
          kind: "refused",
          reason: `the provider answered ${response.status} with a response too large to read`,
        };
      }
      let body: unknown;
      try {
        body = response.text === "" ? {} : JSON.parse(response.text);
      } catch {
        return { kind: "refused", reason: `the provider answered ${response.status} with a body that is not JSON` };
      }
      const remoteId = valueAt(body, check.accountIdPath);
      if (check.accountIdPath !== "" && remoteId === undefined) {
        return {
          kind: "refused",
          reason: `the provider's answer has no "${check.accountIdPath}" (credential_check.account_id_path)`,
        };
      }
      // What the provider says is shown to callers as the account's remote id and name: bounded and printable.
      const shown = (value: string | undefined) => sanitized(value ?? "", secrets, maxRemoteFieldChars);
      return { kind: "ok", remoteId: shown(remoteId), remoteName: shown(valueAt(body, check.accountNamePath)) };
    },
  };
}
