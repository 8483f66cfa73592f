import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import {
  CredentialPlacement,
  EnvironmentService,
  type IntegrationSchema,
} from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import type { HostResolver } from "../../src/providers/outbound-http.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const e = EnvironmentService.method;
const a = AccountService.method;
type IntegrationInit = MessageInitShape<typeof IntegrationSchema>;

const fastRetries = {
  ROOMKEY_PROVIDER_RETRY_MS: "50",
  ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
  ROOMKEY_JOB_LOCK_MS: "2000",
};

let provider: ApiKeyProvider;

beforeAll(async () => {
  provider = await startApiKeyProvider();
});

afterAll(async () => {
  await provider.stop();
});

/** DNS as the test says it is now: a name can be made to point elsewhere between two calls. */
function switchableDns() {
  const records = new Map<string, string>();
  const resolve: HostResolver = async (hostname) => {
    const address = records.get(hostname);
    if (address === undefined) throw Object.assign(new Error(`no such name ${hostname}`), { code: "ENOTFOUND" });
    return [{ address, family: address.includes(":") ? 6 : 4 }];
  };
  return { records, resolve };
}

let keys = 0;
function validKey(): string {
  const key = `sk_guard_${Date.now()}_${keys++}`;
  provider.allow(key, { id: `remote-${keys}`, name: `Remote ${keys}` });
  return key;
}

/** An API key integration whose credential check calls `url`. */
function checkingAt(name: string, url: string): IntegrationInit {
  return { name, authType: AuthType.API_KEY, credentialCheck: { url, placement: CredentialPlacement.BEARER } };
}

/** A new environment and an API token in it that may configure integrations and connect accounts. */
async function environmentWithToken(d: Deployment): Promise<Metadata> {
  const env = randomEnvironmentName();
  await d.environments.unary(e.createEnvironment, {}, d.admin(env));
  const created = await d.tokens.unary(
    TokenService.method.createToken,
    { name: "integrator", scopes: ["environment:read", "environment:write", "accounts:read", "accounts:write"] },
    d.admin(env),
  );
  return metadataFor(env, created.secret);
}

async function settled(d: Deployment, token: Metadata, id: string) {
  const read = async () => (await d.accounts.unary(a.getAccount, { id }, token)).account;
  await eventually(async () => (await read())?.status !== AccountStatus.CONNECTING, 10_000, `account ${id} settles`);
  return read();
}

describe("with an empty allowlist (production)", () => {
  let d: Deployment;
  let token: Metadata;
  const dns = switchableDns();

  beforeAll(async () => {
    d = await startDeployment(testConfig({ ...fastRetries, ROOMKEY_OUTBOUND_ALLOW: "" }), "all", {
      seams: { resolveHost: dns.resolve },
    });
    token = await environmentWithToken(d);
  });

  afterAll(async () => {
    await d.stop();
  });

  it.each([
    ["the local provider", () => `${provider.url}/me`, "127.0.0.1 is a loopback address"],
    [
      "the metadata service",
      () => "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
      "169.254.169.254 is a cloud metadata address",
    ],
    ["IPv6 loopback", () => "http://[::1]/me", "::1 is a loopback address"],
    ["loopback as a decimal number", () => "http://2130706433/me", "127.0.0.1 is a loopback address"],
    ["localhost", () => "http://localhost:8080/me", '"localhost" names a loopback address'],
  ])(
    "when a token puts an integration that checks credentials at %s, then INVALID_ARGUMENT names credential_check.url and nothing is stored",
    async (_what, url, why) => {
      const name = `probe-${Math.random().toString(36).slice(2, 8)}`;
      const integration = checkingAt(name, url());
      const callsBefore = provider.calls();

      const error = await grpcFailure(d.environments.unary(e.putIntegration, { integration }, token));

      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toContain(why);
      expect(grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field)).toEqual([
        "integration.credential_check.url",
      ]);
      const missing = await grpcFailure(d.environments.unary(e.getIntegration, { name }, token));
      expect(missing.code).toBe(status.NOT_FOUND);
      expect(provider.calls()).toBe(callsBefore);
    },
  );

  it("when an OAuth integration's token endpoint is on loopback, then INVALID_ARGUMENT names oauth2.token_url", async () => {
    dns.records.set("api.provider.test", "203.0.113.20");
    const integration: IntegrationInit = {
      name: "oauth-probe",
      authType: AuthType.OAUTH2,
      oauth2: {
        authorizationUrl: "http://127.0.0.1:9/authorize",
        tokenUrl: `${provider.url}/token`,
        clientId: "client",
        clientSecret: "secret-value",
      },
      credentialCheck: { url: "https://api.provider.test/me", placement: CredentialPlacement.BEARER },
    };

    const error = await grpcFailure(d.environments.unary(e.putIntegration, { integration }, token));

    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field)).toEqual([
      "integration.oauth2.token_url",
    ]);
  });

  it("when a name resolves to a private address when the integration is put, then it is refused without saying the address", async () => {
    dns.records.set("billing.corp.test", "10.40.0.12");
    const integration = apiKeyIntegration("corp-probe", "http://billing.corp.test");

    const error = await grpcFailure(d.environments.unary(e.putIntegration, { integration }, token));

    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain('"billing.corp.test" resolves to a private address');
    expect(error.details).not.toContain("10.40.0.12");
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("integration.credential_check.url");
  });

  it("when a name does not resolve when the integration is put, then it is accepted", async () => {
    const integration = apiKeyIntegration("not-yet", "https://not-yet.provider.test");
    const put = await d.environments.unary(e.putIntegration, { integration }, token);
    expect(put.integration?.credentialCheck?.url).toBe("https://not-yet.provider.test/me");
  });

  it("when the provider's name points at loopback only after the integration was put, then the handshake ends FAILED saying it was refused, and the provider is never called", async () => {
    const host = "rebind.provider.test";
    dns.records.set(host, "203.0.113.10");
    await d.environments.unary(
      e.putIntegration,
      { integration: apiKeyIntegration("rebinding", `http://${host}:${new URL(provider.url).port}`) },
      token,
    );
    dns.records.set(host, "127.0.0.1");
    const key = validKey();

    const connected = await d.accounts.unary(
      a.connectAccount,
      { integration: "rebinding", tenantId: "t-1", credential: { case: "apiKey", value: { key: key } } },
      token,
    );
    const account = await settled(d, token, connected.account?.id ?? "");

    expect(account?.status).toBe(AccountStatus.FAILED);
    expect(account?.statusReason).toBe(
      `roomkey refused to call the provider (${host}:${new URL(provider.url).port}): "${host}" resolves to a loopback address`,
    );
    expect(account?.remoteId).toBe("");
    expect(provider.callsWith(key)).toBe(0);
  });
});

describe("with loopback on the allowlist (local development and tests)", () => {
  let d: Deployment;
  let token: Metadata;

  beforeAll(async () => {
    d = await startDeployment(testConfig({ ...fastRetries, ROOMKEY_OUTBOUND_ALLOW: "127.0.0.0/8,::1" }));
    token = await environmentWithToken(d);
    await d.environments.unary(e.putIntegration, { integration: apiKeyIntegration("local", provider.url) }, token);
  });

  afterAll(async () => {
    await d.stop();
  });

  it("when the same local provider is put and an account connects, then it turns ACTIVE with the remote identity", async () => {
    const key = validKey();

    const connected = await d.accounts.unary(
      a.connectAccount,
      { integration: "local", tenantId: "t-1", credential: { case: "apiKey", value: { key: key } } },
      token,
    );
    const account = await settled(d, token, connected.account?.id ?? "");

    expect(account?.status).toBe(AccountStatus.ACTIVE);
    expect(account?.remoteId).toMatch(/^remote-\d+$/);
    expect(provider.callsWith(key)).toBe(1);
  });

  it("when the metadata address is put, then it is still refused: the allowlist exempts only what it names", async () => {
    const integration = apiKeyIntegration("metadata", "http://169.254.169.254/latest");
    const error = await grpcFailure(d.environments.unary(e.putIntegration, { integration }, token));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain("169.254.169.254 is a cloud metadata address");
  });

  it("when the provider refuses with a long message full of control characters, then status_reason keeps the status and a bounded, printable message", async () => {
    const key = validKey();
    provider.queue({
      kind: "status",
      status: 403,
      body: { message: `denied\u0000\u001b[2J\u202e for ${key} ${"x".repeat(500)}` },
    });

    const connected = await d.accounts.unary(
      a.connectAccount,
      { integration: "local", tenantId: "t-2", credential: { case: "apiKey", value: { key: key } } },
      token,
    );
    const account = await settled(d, token, connected.account?.id ?? "");

    expect(account?.status).toBe(AccountStatus.FAILED);
    const reason = account?.statusReason ?? "";
    expect(reason.startsWith("the provider answered 403: denied[2J for *** xxx")).toBe(true);
    expect(reason).not.toContain(key);
    expect([...reason].filter((c) => /\p{C}/u.test(c))).toEqual([]);
    expect(Array.from(reason.slice("the provider answered 403: ".length))).toHaveLength(200);
  });
});
