import { randomBytes } from "node:crypto";
import { type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService, type IntegrationSchema } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import {
  DiffIntegrationsResponseSchema,
  IntegrationDiffKind,
  PromoteIntegrationsResponseSchema,
  PromotionAction,
} from "../../src/gen/roomkey/v1/promotion_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { buildCliIfStale, rowsOf, runCli } from "../helpers/cli-runner.js";
import { grpcDetails, grpcFailure, headersFor, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";

/**
 * Issue 16: DiffIntegrations and PromoteIntegrations between two environments
 * of a real roomkey on real FerretDB and Redis, over real sockets; the
 * promoted OAuth client secret is proven to open in the target by a real
 * code exchange against a local OAuth provider that records how the client
 * authenticated.
 */

const e = EnvironmentService.method;
const a = AccountService.method;
const goodKey = "sk_promotion_good_0123456789";
const redirectUri = "https://app.example/oauth/callback";

let d: Deployment;
let oauth: OAuthProvider;
let keys: ApiKeyProvider;

beforeAll(async () => {
  oauth = await startOAuthProvider();
  keys = await startApiKeyProvider();
  keys.allow(goodKey, { id: "remote-1", name: "Acme" });
  d = await startDeployment(testConfig({ ROOMKEY_PROVIDER_RETRY_MS: "50", ROOMKEY_HANDSHAKE_SWEEP_MS: "1000" }));
  await buildCliIfStale();
}, 180_000);

afterAll(async () => {
  await d?.stop();
  await oauth?.stop();
  await keys?.stop();
});

const secret = (label: string) => `${label}-${randomBytes(12).toString("hex")}`;

interface Pair {
  staging: string;
  production: string;
  stagingSecret: string;
  productionSecret: string;
}

async function put(environment: string, integration: MessageInitShape<typeof IntegrationSchema>) {
  await d.environments.unary(e.putIntegration, { integration }, d.admin(environment));
}

/**
 * staging: alpha (API key, new), crm (OAuth, staging's app, one more scope), keyed (API key, renamed).
 * production: crm (its own OAuth app), keyed, legacy (production only).
 */
async function stagingAndProduction(): Promise<Pair> {
  const pair = {
    staging: randomEnvironmentName(),
    production: randomEnvironmentName(),
    stagingSecret: secret("staging-client-secret"),
    productionSecret: secret("production-client-secret"),
  };
  for (const env of [pair.staging, pair.production]) {
    await d.environments.unary(e.createEnvironment, {}, d.admin(env));
  }
  const stagingCrm = oauthIntegration("crm", oauth.issuer, pair.stagingSecret);
  if (stagingCrm.oauth2) {
    stagingCrm.oauth2.clientId = "staging-app";
    stagingCrm.oauth2.scopes = ["openid", "contacts.read", "contacts.write"];
  }
  await put(pair.staging, stagingCrm);
  await put(pair.staging, { ...apiKeyIntegration("alpha", keys.url), displayName: "Alpha" });
  await put(pair.staging, { ...apiKeyIntegration("keyed", keys.url), displayName: "Keyed v2" });
  const productionCrm = oauthIntegration("crm", oauth.issuer, pair.productionSecret);
  if (productionCrm.oauth2) productionCrm.oauth2.clientId = "production-app";
  await put(pair.production, productionCrm);
  await put(pair.production, { ...apiKeyIntegration("keyed", keys.url), displayName: "Keyed" });
  await put(pair.production, { ...apiKeyIntegration("legacy", keys.url), displayName: "Legacy" });
  return pair;
}

/** DiffIntegrations over the Connect protocol with JSON, keeping the response's bytes as they came. */
async function rawDiff(to: string, body: Record<string, unknown>) {
  const response = await fetch(
    `http://127.0.0.1:${d.server.app.httpPort}/roomkey.v1.EnvironmentService/DiffIntegrations`,
    {
      method: "POST",
      headers: { "content-type": "application/json", ...headersFor(to, d.server.adminKey) },
      body: JSON.stringify(body),
    },
  );
  const text = await response.text();
  return { status: response.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

function diff(to: string, from: string, extra: { includeSame?: boolean; pageSize?: number; pageToken?: string } = {}) {
  return d.environments.unary(e.diffIntegrations, { fromEnvironment: from, ...extra }, d.admin(to));
}

function promote(
  to: string,
  from: string,
  extra: { names?: string[]; all?: boolean; dryRun?: boolean; keep?: string[] } = {},
) {
  const { keep, ...rest } = extra;
  return d.environments.unary(
    e.promoteIntegrations,
    { fromEnvironment: from, all: extra.names === undefined, ...rest, keepTargetFields: { paths: keep ?? [] } },
    d.admin(to),
  );
}

async function settled(environment: string, id: string) {
  await eventually(
    async () =>
      (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account?.status !== AccountStatus.CONNECTING,
    15_000,
    `account ${id} leaves CONNECTING`,
  );
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account;
}

/** A whole OAuth connection of `crm` in `environment`; returns how the client authenticated at the token endpoint. */
async function connectOAuth(environment: string): Promise<string | undefined> {
  const started = await d.accounts.unary(
    a.startOAuthConnection,
    { integration: "crm", tenantId: "tenant-1", redirectUri },
    d.admin(environment),
  );
  const url = new URL(started.authorizationUrl);
  const before = oauth.clientAuthentications().length;
  const { code, state } = await oauth.authorize(started.authorizationUrl);
  const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(environment));
  expect((await settled(environment, account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);
  expect(url.searchParams.get("client_id")).toBeTruthy();
  return oauth.clientAuthentications().slice(before)[0];
}

const basic = (id: string, clientSecret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(clientSecret)}`).toString("base64")}`;

const kinds = (response: {
  integrations: { name: string; kind: IntegrationDiffKind; fields: { field: string }[] }[];
}) => response.integrations.map((i) => [i.name, IntegrationDiffKind[i.kind], i.fields.map((f) => f.field)]);

describe("DiffIntegrations and PromoteIntegrations against a real roomkey", { timeout: 90_000 }, () => {
  it("when staging and production overlap, then the diff lists each integration's kind and fields and never a secret; a dry run changes nothing; a promotion keeping production's OAuth app works there; a second one is UNCHANGED", async () => {
    const pair = await stagingAndProduction();
    // Things of staging's room that must never be copied.
    const stagingAccount = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "t-staging", credential: { case: "apiKey", value: { key: goodKey } } },
      d.admin(pair.staging),
    );
    await d.tokens.unary(
      TokenService.method.createToken,
      { name: "staging-ci", scopes: ["tokens:read"] },
      d.admin(pair.staging),
    );

    const raw = await rawDiff(pair.production, { fromEnvironment: pair.staging });
    expect(raw.status).toBe(200);
    for (const s of [pair.stagingSecret, pair.productionSecret]) expect(raw.text).not.toContain(s);
    const before = await diff(pair.production, pair.staging);
    for (const s of [pair.stagingSecret, pair.productionSecret]) {
      expect(Buffer.from(toBinary(DiffIntegrationsResponseSchema, before)).includes(s)).toBe(false);
    }
    expect(kinds(before)).toEqual([
      [
        "alpha",
        "ONLY_IN_FROM",
        [
          "auth_type",
          "credential_check.account_id_path",
          "credential_check.account_name_path",
          "credential_check.method",
          "credential_check.placement",
          "credential_check.url",
          "display_name",
        ],
      ],
      ["crm", "DIFFERENT", ["oauth2.client_id", "oauth2.client_secret", "oauth2.scopes"]],
      ["keyed", "DIFFERENT", ["display_name"]],
      ["legacy", "ONLY_IN_TO", expect.arrayContaining(["auth_type", "display_name"])],
    ]);
    const crm = before.integrations[1];
    expect(crm?.fields.map((f) => [f.field, f.fromValue, f.toValue, f.secret])).toEqual([
      ["oauth2.client_id", '"staging-app"', '"production-app"', false],
      ["oauth2.client_secret", "", "", true],
      ["oauth2.scopes", '["openid","contacts.read","contacts.write"]', '["openid","contacts.read"]', false],
    ]);
    expect(before.integrations[0]?.fields[0]).toMatchObject({ fromValue: '"AUTH_TYPE_API_KEY"', toValue: "" });

    const keep = ["oauth2.client_id", "oauth2.client_secret"];
    const dry = await promote(pair.production, pair.staging, { dryRun: true, keep });
    expect(dry.dryRun).toBe(true);
    expect(dry.promotions.map((p) => [p.name, PromotionAction[p.action], p.changes.map((c) => c.field)])).toEqual([
      ["alpha", "CREATE", expect.arrayContaining(["auth_type", "credential_check.url", "display_name"])],
      ["crm", "UPDATE", ["oauth2.scopes"]],
      ["keyed", "UPDATE", ["display_name"]],
    ]);
    expect(await diff(pair.production, pair.staging)).toEqual(before);

    const done = await promote(pair.production, pair.staging, { keep });
    expect(done.dryRun).toBe(false);
    expect(done.promotions).toEqual(dry.promotions);
    for (const s of [pair.stagingSecret, pair.productionSecret]) {
      expect(Buffer.from(toBinary(PromoteIntegrationsResponseSchema, done)).includes(s)).toBe(false);
    }
    const after = await diff(pair.production, pair.staging);
    expect(kinds(after)).toEqual([
      ["crm", "DIFFERENT", ["oauth2.client_id", "oauth2.client_secret"]],
      ["legacy", "ONLY_IN_TO", expect.any(Array)],
    ]);

    // Accounts and tokens stay in their room: production has none of staging's.
    const accounts = await d.accounts.unary(a.listAccounts, {}, d.admin(pair.production));
    expect(accounts.accounts).toEqual([]);
    const tokens = await d.tokens.unary(TokenService.method.listTokens, {}, d.admin(pair.production));
    expect(tokens.tokens.map((t) => t.name)).not.toContain("staging-ci");
    expect((await settled(pair.staging, stagingAccount.account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);

    // Production's own OAuth app, with production's secret, reached the token endpoint.
    expect(await connectOAuth(pair.production)).toBe(basic("production-app", pair.productionSecret));
    // The promoted API-key integration works in production.
    const connected = await d.accounts.unary(
      a.connectAccount,
      { integration: "alpha", tenantId: "t-1", credential: { case: "apiKey", value: { key: goodKey } } },
      d.admin(pair.production),
    );
    expect((await settled(pair.production, connected.account?.id ?? ""))?.status).toBe(AccountStatus.ACTIVE);

    const again = await promote(pair.production, pair.staging, { keep });
    expect(again.promotions.map((p) => [p.name, PromotionAction[p.action], p.changes.length])).toEqual([
      ["alpha", "UNCHANGED", 0],
      ["crm", "UNCHANGED", 0],
      ["keyed", "UNCHANGED", 0],
    ]);

    // The crossing is in both rooms' audit logs: the target's and the source's (dry run, promotion, again).
    const promotions = async (environment: string) =>
      (
        await d.environments.unary(
          e.listAuditEvents,
          { method: "roomkey.v1.EnvironmentService/PromoteIntegrations" },
          d.admin(environment),
        )
      ).events.map((event) => [event.resource, event.outcome, event.details]);
    expect(await promotions(pair.production)).toEqual(
      Array(3).fill([pair.production, "OK", { from_environment: pair.staging }]),
    );
    expect(await promotions(pair.staging)).toEqual(
      Array(3).fill([pair.production, "OK", { to_environment: pair.production }]),
    );
  });

  it("when the OAuth app is not kept, then staging's client secret is resealed for production and opens there", async () => {
    const pair = await stagingAndProduction();
    const done = await promote(pair.production, pair.staging, { names: ["crm"] });
    expect(done.promotions.map((p) => [p.name, PromotionAction[p.action]])).toEqual([["crm", "UPDATE"]]);
    expect(
      (await diff(pair.production, pair.staging, { includeSame: true })).integrations.find((i) => i.name === "crm")
        ?.kind,
    ).toBe(IntegrationDiffKind.SAME);
    expect(await connectOAuth(pair.production)).toBe(basic("staging-app", pair.stagingSecret));
    // The stored ciphertext is production's own, not staging's copied.
    const stored = (env: string) =>
      d.mongo
        .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${env}`)
        .collection<{ _id: string; oauth2?: { sealedClientSecret?: string } }>("integrations")
        .findOne({ _id: "crm" });
    expect((await stored(pair.production))?.oauth2?.sealedClientSecret).not.toBe(
      (await stored(pair.staging))?.oauth2?.sealedClientSecret,
    );
  });

  it("when a diff is paged, then pages continue in name order and a page token does not continue another source's diff", async () => {
    const pair = await stagingAndProduction();
    const first = await diff(pair.production, pair.staging, { pageSize: 2 });
    expect(first.integrations.map((i) => i.name)).toEqual(["alpha", "crm"]);
    const second = await diff(pair.production, pair.staging, { pageSize: 2, pageToken: first.nextPageToken });
    expect(second.integrations.map((i) => i.name)).toEqual(["keyed", "legacy"]);
    expect(second.nextPageToken).toBe("");
    const other = randomEnvironmentName();
    await d.environments.unary(e.createEnvironment, {}, d.admin(other));
    const error = await grpcFailure(diff(pair.production, other, { pageSize: 2, pageToken: first.nextPageToken }));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations[0]?.field).toBe("page_token");
  });

  it("when a call is refused, then each error has its status, reason and field, and nothing is written", async () => {
    const pair = await stagingAndProduction();
    const before = await diff(pair.production, pair.staging, { includeSame: true });
    const created = await d.tokens.unary(
      TokenService.method.createToken,
      { name: "all", scopes: ["environment:read", "environment:write"] },
      d.admin(pair.production),
    );
    const withToken = await grpcFailure(
      d.environments.unary(
        e.promoteIntegrations,
        { fromEnvironment: pair.staging, all: true },
        metadataFor(pair.production, created.secret),
      ),
    );
    expect([withToken.code, grpcDetails(withToken).errorInfo?.reason]).toEqual([
      status.PERMISSION_DENIED,
      "ADMIN_KEY_REQUIRED",
    ]);
    const diffWithToken = await grpcFailure(
      d.environments.unary(
        e.diffIntegrations,
        { fromEnvironment: pair.staging },
        metadataFor(pair.production, created.secret),
      ),
    );
    expect(grpcDetails(diffWithToken).errorInfo?.reason).toBe("ADMIN_KEY_REQUIRED");

    const cases: [() => ReturnType<typeof promote>, number, string, (string | Record<string, string>)?][] = [
      [() => promote(pair.production, randomEnvironmentName()), status.NOT_FOUND, "ENVIRONMENT_NOT_FOUND"],
      [
        () => promote(pair.production, pair.production),
        status.INVALID_ARGUMENT,
        "PROMOTION_SAME_ENVIRONMENT",
        "from_environment",
      ],
      [() => promote(pair.production, "Staging"), status.INVALID_ARGUMENT, "ENVIRONMENT_INVALID", "from_environment"],
      [
        () => promote(pair.production, pair.staging, { names: ["crm", "ghost"] }),
        status.NOT_FOUND,
        "INTEGRATION_NOT_FOUND",
        { environment: pair.staging, integration: "ghost" },
      ],
      [
        () => promote(pair.production, pair.staging, { keep: ["credential_check.url"] }),
        status.INVALID_ARGUMENT,
        "INVALID_REQUEST",
        "keep_target_fields",
      ],
      [
        () => promote(pair.production, pair.staging, { keep: ["display_name"] }),
        status.FAILED_PRECONDITION,
        "PROMOTION_KEPT_FIELD_MISSING",
        { integration: "alpha", field: "display_name" },
      ],
      [
        () =>
          d.environments.unary(
            e.promoteIntegrations,
            { fromEnvironment: pair.staging, all: true, names: ["crm"] },
            d.admin(pair.production),
          ),
        status.INVALID_ARGUMENT,
        "INVALID_REQUEST",
      ],
    ];
    for (const [call, code, reason, named] of cases) {
      const error = await grpcFailure(call());
      const details = grpcDetails(error);
      expect([error.code, details.errorInfo?.reason], `${reason}: ${error.details}`).toEqual([code, reason]);
      if (typeof named === "string") expect(details.badRequest?.fieldViolations[0]?.field).toBe(named);
      if (typeof named === "object") expect(details.errorInfo?.metadata).toEqual(named);
    }
    // A rule on the whole request names no field, and the message says so without an empty one.
    const both = await grpcFailure(
      d.environments.unary(
        e.promoteIntegrations,
        { fromEnvironment: pair.staging, all: true, names: ["crm"] },
        d.admin(pair.production),
      ),
    );
    expect(both.details).toBe("invalid request: exactly one of names and all must be set");
    const sameDiff = await grpcFailure(diff(pair.production, pair.production));
    expect(grpcDetails(sameDiff).errorInfo?.reason).toBe("PROMOTION_SAME_ENVIRONMENT");
    const unknownDiff = await grpcFailure(diff(pair.production, randomEnvironmentName()));
    expect([unknownDiff.code, grpcDetails(unknownDiff).errorInfo?.metadata?.field]).toEqual([
      status.NOT_FOUND,
      "from_environment",
    ]);
    expect(await diff(pair.production, pair.staging, { includeSame: true })).toEqual(before);
  });

  it("when the CLI diffs, then it prints one row per differing field and --exit-code exits 3 until a promotion makes them equal", async () => {
    const pair = await stagingAndProduction();
    const run = await runCli(d.server, [
      "-e",
      pair.production,
      "integration",
      "diff",
      "--from",
      pair.staging,
      "--exit-code",
    ]);
    expect(run.code).toBe(3);
    for (const s of [pair.stagingSecret, pair.productionSecret]) expect(run.stdout + run.stderr).not.toContain(s);
    const rows = rowsOf(run.stdout);
    expect(run.stdout.split("\n")[0]).toMatch(/^INTEGRATION +KIND +FIELD +FROM +TO$/);
    expect(rows.filter((r) => r[0] === "crm")).toEqual([
      ["crm", "DIFFERENT", "oauth2.client_id", '"staging-app"', '"production-app"'],
      ["crm", "DIFFERENT", "oauth2.client_secret", "(secret) different", "(secret) different"],
      [
        "crm",
        "DIFFERENT",
        "oauth2.scopes",
        '["openid","contacts.read","contacts.write"]',
        '["openid","contacts.read"]',
      ],
    ]);
    expect(rows.filter((r) => r[0] === "keyed")).toEqual([
      ["keyed", "DIFFERENT", "display_name", '"Keyed v2"', '"Keyed"'],
    ]);

    const promoted = await runCli(d.server, [
      "integration",
      "promote",
      "--from",
      pair.staging,
      "--to",
      pair.production,
      "crm",
      "keyed",
      "alpha",
    ]);
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stderr).toContain("1 created, 2 updated, 0 unchanged");
    await d.environments.unary(e.deleteIntegration, { name: "legacy" }, d.admin(pair.production));
    const equal = await runCli(d.server, [
      "integration",
      "diff",
      "--from",
      pair.staging,
      "--to",
      pair.production,
      "--exit-code",
    ]);
    expect([equal.code, equal.stdout]).toEqual([0, "no differences\n"]);
  });
});
