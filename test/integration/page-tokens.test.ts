import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, TokenState } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { grpcClient, grpcDetails, grpcFailure } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, startDeployment, startTestServer } from "../helpers/server.js";

let d: Deployment;
/** Two environments with five tokens each. */
let a: string;
let b: string;
const tokensIn = new Map<string, string[]>();

const e = EnvironmentService.method;
const t = TokenService.method;

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(e.createEnvironment, {}, d.admin(name));
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const created = await d.tokens.unary(t.createToken, { name: `t${i}`, scopes: ["tokens:read"] }, d.admin(name));
    ids.push(created.token?.id ?? "");
  }
  tokensIn.set(name, ids);
  return name;
}

beforeAll(async () => {
  d = await startDeployment();
  a = await newEnvironment();
  b = await newEnvironment();
}, 60_000);

afterAll(() => d.stop());

/** The next_page_token of ListTokens' first page of two in `environment`. */
async function tokensPageToken(environment: string, state = TokenState.UNSPECIFIED): Promise<string> {
  const page = await d.tokens.unary(t.listTokens, { pageSize: 2, state }, d.admin(environment));
  expect(page.nextPageToken).not.toBe("");
  return page.nextPageToken;
}

function expectPageTokenRefused(error: ServiceError): void {
  expect(error.code).toBe(status.INVALID_ARGUMENT);
  expect(error.details).toMatch(/^page_token: /);
  const details = grpcDetails(error);
  expect(details.errorInfo?.reason).toBe("INVALID_REQUEST");
  expect(details.badRequest?.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
}

describe("page tokens are bound to the listing that made them", () => {
  it("when tokens are listed in pages, then every token of the environment appears once, newest first", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await d.tokens.unary(t.listTokens, { pageSize: 2, pageToken }, d.admin(a));
      expect(page.nextPageToken).toMatch(/^([A-Za-z0-9_-]{20,80})?$/);
      seen.push(...page.tokens.map((token) => token.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "" && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...(tokensIn.get(a) ?? [])].reverse());
  });

  it("when a page token of environment A is sent to environment B, then B refuses it with INVALID_ARGUMENT naming page_token", async () => {
    const fromA = await tokensPageToken(a);
    expectPageTokenRefused(
      await grpcFailure(d.tokens.unary(t.listTokens, { pageSize: 2, pageToken: fromA }, d.admin(b))),
    );
    // B's own token works in B.
    const fromB = await tokensPageToken(b);
    const next = await d.tokens.unary(t.listTokens, { pageSize: 2, pageToken: fromB }, d.admin(b));
    expect(next.tokens.map((token) => token.id)).toEqual([...(tokensIn.get(b) ?? [])].reverse().slice(2, 4));
  });

  it("when a page token of ListTokens is sent to ListAccounts or ListIntegrations, then it is refused", async () => {
    const fromTokens = await tokensPageToken(a);
    expectPageTokenRefused(
      await grpcFailure(d.accounts.unary(AccountService.method.listAccounts, { pageToken: fromTokens }, d.admin(a))),
    );
    expectPageTokenRefused(
      await grpcFailure(d.environments.unary(e.listIntegrations, { pageToken: fromTokens }, d.admin(a))),
    );
  });

  it("when a page token is sent with another filter, then it is refused", async () => {
    const active = await tokensPageToken(a, TokenState.ACTIVE);
    expectPageTokenRefused(
      await grpcFailure(d.tokens.unary(t.listTokens, { pageToken: active, state: TokenState.REVOKED }, d.admin(a))),
    );
    expectPageTokenRefused(await grpcFailure(d.tokens.unary(t.listTokens, { pageToken: active }, d.admin(a))));
    const next = await d.tokens.unary(t.listTokens, { pageToken: active, state: TokenState.ACTIVE }, d.admin(a));
    expect(next.tokens).toHaveLength(3);
  });

  it.each([
    ['{"l":"tokens:0","a":"zzzz"}', "ListTokens"],
    ['{"l":"environments","a":"zzzz"}', "ListEnvironments"],
  ])("when the hand-made unsigned token %s is sent to %s, then it is refused", async (json, method) => {
    const pageToken = Buffer.from(json, "utf8").toString("base64url");
    const call =
      method === "ListTokens"
        ? d.tokens.unary(t.listTokens, { pageToken }, d.admin(a))
        : d.environments.unary(e.listEnvironments, { pageToken }, d.admin(a));
    expectPageTokenRefused(await grpcFailure(call));
  });

  it("when environments are listed in pages, then the token works only in the environment of the call that got it", async () => {
    const first = await d.environments.unary(e.listEnvironments, { pageSize: 2 }, d.admin(a));
    expectPageTokenRefused(
      await grpcFailure(d.environments.unary(e.listEnvironments, { pageToken: first.nextPageToken }, d.admin(b))),
    );
    const seen = first.environments.map((env) => env.name);
    let pageToken = first.nextPageToken;
    while (pageToken !== "") {
      const page = await d.environments.unary(e.listEnvironments, { pageSize: 2, pageToken }, d.admin(a));
      seen.push(...page.environments.map((env) => env.name));
      pageToken = page.nextPageToken;
    }
    expect(seen).toEqual(expect.arrayContaining([a, b, "development", "production", "staging"]));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("when integrations are listed in pages, then each appears once", async () => {
    const names = ["crm-a", "crm-b", "crm-c"];
    for (const name of names) {
      await d.environments.unary(
        e.putIntegration,
        { integration: apiKeyIntegration(name, "https://provider.example") },
        d.admin(b),
      );
    }
    const first = await d.environments.unary(e.listIntegrations, { pageSize: 2 }, d.admin(b));
    const second = await d.environments.unary(
      e.listIntegrations,
      { pageSize: 2, pageToken: first.nextPageToken },
      d.admin(b),
    );
    expect([...first.integrations, ...second.integrations].map((i) => i.name)).toEqual(names);
    expect(second.nextPageToken).toBe("");
  });

  it("when the environment was deleted and made again under its name, then a page token of the old one is refused", async () => {
    const name = await newEnvironment();
    const old = await tokensPageToken(name);
    await d.environments.unary(e.deleteEnvironment, { force: true }, d.admin(name));
    await d.environments.unary(e.createEnvironment, {}, d.admin(name));
    for (let i = 0; i < 3; i++)
      await d.tokens.unary(t.createToken, { name: `again${i}`, scopes: ["tokens:read"] }, d.admin(name));
    expectPageTokenRefused(await grpcFailure(d.tokens.unary(t.listTokens, { pageToken: old }, d.admin(name))));
  });

  it("when another replica of the deployment gets a page token, then it continues the listing", async () => {
    const replica = await startTestServer(d.server.config, "api");
    const tokens = grpcClient(TokenService, replica.grpcAddress);
    try {
      const next = await tokens.unary(t.listTokens, { pageSize: 2, pageToken: await tokensPageToken(a) }, d.admin(a));
      expect(next.tokens.map((token) => token.id)).toEqual([...(tokensIn.get(a) ?? [])].reverse().slice(2, 4));
    } finally {
      tokens.close();
      await replica.stop();
    }
  });
});
