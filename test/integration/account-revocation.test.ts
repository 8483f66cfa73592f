import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Services } from "../../src/app/services.js";
import { openCredential } from "../../src/domain/accounts/account-common.js";
import type { CredentialField } from "../../src/domain/accounts/accounts.js";
import {
  AccountService,
  AccountStatus,
  UpstreamRevocationStatus,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { ClientAuthMethod, EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type RevocationEndpoint, startRevocationEndpoint } from "../helpers/revocation-endpoint.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

const a = AccountService.method;
const redirectUri = "https://app.example/oauth/callback";
const clientSecret = "client-secret-1";

let d: Deployment;
let oauth: OAuthProvider;
let revoker: RevocationEndpoint;
let services: Services | undefined;

beforeAll(async () => {
  oauth = await startOAuthProvider();
  revoker = await startRevocationEndpoint();
  d = await startDeployment(
    // Revocations back off from 5 × ROOMKEY_PROVIDER_RETRY_MS: 250 ms, 500 ms, 1 s, ... here.
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
      ROOMKEY_REFRESH_SWEEP_MS: "1000",
    }),
    "all",
    {
      seams: {
        inspect(parts) {
          services = parts.services;
        },
      },
    },
  );
});

afterAll(async () => {
  await d.stop();
  await oauth.stop();
  await revoker.stop();
});

/** A new environment with an OAuth integration `crm`, revoking at the test endpoint unless told not to. */
async function environmentWith(options: { revocation: boolean; authMethod?: ClientAuthMethod }): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(name));
  const integration = oauthIntegration("crm", oauth.issuer, clientSecret);
  integration.oauth2 = {
    ...integration.oauth2,
    ...(options.revocation ? { revocationUrl: revoker.url } : {}),
    ...(options.authMethod === undefined ? {} : { clientAuthMethod: options.authMethod }),
  };
  await d.environments.unary(EnvironmentService.method.putIntegration, { integration }, d.admin(name));
  return name;
}

async function accountOf(environment: string, id: string) {
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

/** A new OAuth account through the whole flow, ACTIVE. */
async function connected(environment: string): Promise<string> {
  const started = await d.accounts.unary(
    a.startOAuthConnection,
    { integration: "crm", tenantId: "tenant-1", redirectUri },
    d.admin(environment),
  );
  const { code, state } = await oauth.authorize(started.authorizationUrl);
  const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(environment));
  const id = account?.id ?? "";
  await eventually(
    async () => (await accountOf(environment, id))?.status === AccountStatus.ACTIVE,
    10_000,
    `account ${id} turns ACTIVE`,
  );
  return id;
}

function accountsOf(environment: string) {
  return d.mongo.db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${environment}`).collection<{
    _id: string;
    credentials: Record<string, string>;
    upstreamRevocation?: { status: string; tokens?: Record<string, string> };
  }>("accounts");
}

/** The account's tokens in the clear, as the provider issued them (the test opens what roomkey sealed). */
async function tokensOf(environment: string, id: string): Promise<Record<"access_token" | "refresh_token", string>> {
  if (!services) throw new Error("the deployment's services were not shown to the test");
  const key = await services.directory.dataKey(environment);
  const stored = await accountsOf(environment).findOne({ _id: id });
  const opened = (field: CredentialField) => {
    const sealed = stored?.credentials[field];
    if (sealed === undefined) throw new Error(`account ${id} has no ${field}`);
    return openCredential(key, environment, id, field, sealed);
  };
  return { access_token: opened("access_token"), refresh_token: opened("refresh_token") };
}

/** DeleteAccount, timed: it must not wait for the provider. */
async function deleteTimed(environment: string, id: string) {
  const started = Date.now();
  const { account } = await d.accounts.unary(a.deleteAccount, { id }, d.admin(environment));
  return { account, ms: Date.now() - started };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

describe("upstream revocation on DeleteAccount", () => {
  it("when an account of an integration with a revocation_url is deleted, then DeleteAccount returns DISCONNECTED at once, and the provider is sent the refresh token then the access token with their hints and client authentication, and the revocation turns DONE", async () => {
    const environment = await environmentWith({ revocation: true });
    const id = await connected(environment);
    const tokens = await tokensOf(environment, id);
    const before = revoker.requests().length;

    const { account, ms } = await deleteTimed(environment, id);

    expect(ms).toBeLessThan(2_000);
    expect(account?.status).toBe(AccountStatus.DISCONNECTED);
    expect(account?.upstreamRevocation?.status).toBe(UpstreamRevocationStatus.PENDING);
    await eventually(
      async () => (await accountOf(environment, id))?.upstreamRevocation?.status === UpstreamRevocationStatus.DONE,
      10_000,
      "the revocation turns DONE",
    );
    const done = await accountOf(environment, id);
    expect(done?.upstreamRevocation).toMatchObject({ attempts: 1, lastError: "" });
    expect(done?.status).toBe(AccountStatus.DISCONNECTED);

    const sent = revoker.requests().slice(before);
    expect(sent.map((r) => r.form)).toEqual([
      { token: tokens.refresh_token, token_type_hint: "refresh_token" },
      { token: tokens.access_token, token_type_hint: "access_token" },
    ]);
    for (const request of sent) {
      expect(request.path).toBe("/revoke");
      expect(request.contentType).toBe("application/x-www-form-urlencoded");
      expect(request.authorization).toBe(basic("roomkey-test", clientSecret));
    }
    // Nothing of the tokens is left with roomkey.
    const stored = await accountsOf(environment).findOne({ _id: id });
    expect(stored?.credentials).toEqual({});
    expect(stored?.upstreamRevocation?.status).toBe("done");
    expect(stored?.upstreamRevocation?.tokens).toBeUndefined();
  });

  it("when the revocation endpoint answers 503 three times, then DeleteAccount still returns at once, the account shows PENDING with the attempts and last error, and the retries end DONE", async () => {
    const environment = await environmentWith({ revocation: true, authMethod: ClientAuthMethod.CLIENT_SECRET_POST });
    const id = await connected(environment);
    const tokens = await tokensOf(environment, id);
    const before = revoker.requests().length;
    revoker.queue(503, 503, 503);

    const { account, ms } = await deleteTimed(environment, id);

    expect(ms).toBeLessThan(2_000);
    expect(account?.status).toBe(AccountStatus.DISCONNECTED);
    await eventually(
      async () => ((await accountOf(environment, id))?.upstreamRevocation?.attempts ?? 0) > 0,
      10_000,
      "a failed attempt is recorded",
    );
    const retrying = (await accountOf(environment, id))?.upstreamRevocation;
    expect(retrying?.status).toBe(UpstreamRevocationStatus.PENDING);
    expect(retrying?.lastError).toBe(
      "revoking the refresh token: the revocation endpoint answered 503: temporarily_unavailable",
    );
    // The error names the token by kind, never by value.
    expect(retrying?.lastError).not.toContain(tokens.refresh_token);

    await eventually(
      async () => (await accountOf(environment, id))?.upstreamRevocation?.status === UpstreamRevocationStatus.DONE,
      15_000,
      "the revocation turns DONE after its retries",
    );
    expect((await accountOf(environment, id))?.upstreamRevocation).toMatchObject({ attempts: 4, lastError: "" });
    const sent = revoker.requests().slice(before);
    expect(sent.map((r) => r.form.token_type_hint)).toEqual([
      "refresh_token",
      "refresh_token",
      "refresh_token",
      "refresh_token",
      "access_token",
    ]);
    // client_secret_post: the client authenticates in the form.
    expect(sent.at(-1)?.form).toEqual({
      token: tokens.access_token,
      token_type_hint: "access_token",
      client_id: "roomkey-test",
      client_secret: clientSecret,
    });
    expect(sent.every((r) => r.authorization === "")).toBe(true);
  });

  it("when a pending revocation lost its job, then the account sweep queues it again and it ends DONE", async () => {
    const environment = await environmentWith({ revocation: true });
    const id = await connected(environment);
    revoker.queue(...Array.from({ length: 50 }, () => 503));
    await deleteTimed(environment, id);
    await eventually(
      async () => ((await accountOf(environment, id))?.upstreamRevocation?.attempts ?? 0) > 0,
      10_000,
      "a failed attempt is recorded",
    );
    // Redis loses the job (removed while it waits out its backoff), and the revocation has sat for a while.
    const rotation = services?.queues.queue(environment, "rotation");
    await eventually(async () => (await rotation?.remove(`revoke-${id}`)) === 1, 10_000, "the job is removed");
    revoker.clearQueue();
    const attempts = (await accountOf(environment, id))?.upstreamRevocation?.attempts ?? 0;
    await accountsOf(environment).updateOne(
      { _id: id },
      { $set: { "upstreamRevocation.updateTime": new Date(Date.now() - 3_600_000) } },
    );

    await eventually(
      async () => (await accountOf(environment, id))?.upstreamRevocation?.status === UpstreamRevocationStatus.DONE,
      15_000,
      "the sweep's job revokes the tokens",
    );
    expect((await accountOf(environment, id))?.upstreamRevocation?.attempts).toBe(attempts + 1);
  });

  it("when the integration has no revocation_url, then DeleteAccount wipes the credentials and the account has no upstream revocation", async () => {
    const environment = await environmentWith({ revocation: false });
    const id = await connected(environment);
    const before = revoker.requests().length;

    const { account } = await deleteTimed(environment, id);

    expect(account?.status).toBe(AccountStatus.DISCONNECTED);
    expect(account?.upstreamRevocation).toBeUndefined();
    // Long enough for a queued revocation to have run.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await accountOf(environment, id))?.upstreamRevocation).toBeUndefined();
    const stored = await accountsOf(environment).findOne({ _id: id });
    expect(stored?.credentials).toEqual({});
    expect(stored?.upstreamRevocation).toBeUndefined();
    expect(revoker.requests().length).toBe(before);
  });
});
