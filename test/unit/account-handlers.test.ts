import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ConnectAccountInput } from "../../src/domain/accounts/account-common.js";
import type { AccountEvent, AccountView, Credential } from "../../src/domain/accounts/accounts.js";
import type { AccountFilter } from "../../src/domain/accounts/ports.js";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import { type AccountHandlerDeps, createAccountHandlers } from "../../src/rpc/handlers/account-handlers.js";
import { testPageTokens } from "../helpers/fakes.js";
import { failure, headers, routerFor, tokenSecret } from "../helpers/router.js";

const time = new Date(Date.UTC(2030, 0, 1));
const id = (n: number) => `acc_${String(n).padStart(22, "0")}`;

function view(n: number, overrides: Partial<AccountView> = {}): AccountView {
  return {
    id: id(n),
    integration: "hubspot",
    tenantId: "tenant-1",
    labels: {},
    status: "connecting",
    statusReason: "",
    authType: "api_key",
    createTime: time,
    updateTime: time,
    ...overrides,
  };
}

/** AccountService handlers behind the real edge, over connect-es's in-memory transport, with a fake domain. */
function setup(options: { scopes?: string[]; credential?: Credential; events?: AccountEvent[] } = {}) {
  const connected: { environment: string; input: ConnectAccountInput }[] = [];
  const filters: AccountFilter[] = [];
  const notUsed = async (): Promise<never> => {
    throw new Error("not used");
  };
  const accounts: AccountHandlerDeps["accounts"] = {
    connect: async (environment, input) => {
      connected.push({ environment, input });
      return { account: view(1), replayed: false };
    },
    get: async (_environment, accountId) => view(Number(accountId.slice(4))),
    list: async (_environment, filter) => {
      filters.push(filter);
      return { items: [view(2, { status: "active" })], nextAfter: undefined };
    },
    credentials: async () => options.credential ?? { kind: "api_key", apiKey: "sk_live_1" },
    update: notUsed,
    disconnect: notUsed,
    startOAuth: notUsed,
    completeOAuth: notUsed,
    refresh: notUsed,
  };
  const sessions: AccountHandlerDeps["sessions"] = {
    create: notUsed,
    getFor: notUsed,
    revoke: notUsed,
    connect: notUsed,
    startOAuth: notUsed,
    completeOAuth: notUsed,
    getAccount: notUsed,
  };
  async function* watch(): AsyncIterable<AccountEvent> {
    yield* options.events ?? [];
  }
  const { transport } = routerFor(
    (router, edge) =>
      router.service(
        AccountService,
        edge.wrap(AccountService, createAccountHandlers({ accounts, sessions, watch, pages: testPageTokens() })),
      ),
    { scopes: options.scopes ?? [] },
  );
  return { client: createClient(AccountService, transport), connected, filters };
}

describe("AccountService handlers behind the edge", () => {
  it("when ConnectAccount carries an API key, then the domain gets it as an api_key credential with the labels", async () => {
    const { client, connected } = setup();
    const answer = await client.connectAccount(
      {
        integration: "hubspot",
        tenantId: "tenant-1",
        labels: { team: "sales" },
        credential: { case: "apiKey", value: { key: "sk_live_1" } },
      },
      { headers: headers() },
    );
    expect(connected).toEqual([
      {
        environment: "staging",
        input: {
          integration: "hubspot",
          tenantId: "tenant-1",
          labels: { team: "sales" },
          credential: { kind: "api_key", apiKey: "sk_live_1" },
          idempotencyKey: undefined,
        },
      },
    ]);
    expect(answer.account).toMatchObject({ id: id(1), status: AccountStatus.CONNECTING, authType: AuthType.API_KEY });
  });

  it("when ConnectAccount has no credential, then INVALID_ARGUMENT names it before the domain runs", async () => {
    const { client, connected } = setup();
    const error = await failure(
      client.connectAccount({ integration: "hubspot", tenantId: "t" }, { headers: headers() }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toContain("credential");
    expect(connected).toEqual([]);
  });

  it("when GetAccountCredentials reads an API key account, then the key comes back in api_key.key", async () => {
    const { client } = setup({ scopes: ["accounts:credentials"] });
    const answer = await client.getAccountCredentials({ id: id(1) }, { headers: headers(tokenSecret) });
    expect(answer.accountId).toBe(id(1));
    expect(answer.credential).toEqual({ case: "apiKey", value: expect.objectContaining({ key: "sk_live_1" }) });
  });

  it("when a token without accounts:credentials asks for credentials, then PERMISSION_DENIED", async () => {
    const { client } = setup({ scopes: ["accounts:read"] });
    const error = await failure(client.getAccountCredentials({ id: id(1) }, { headers: headers(tokenSecret) }));
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("when ListAccounts filters, then only the fields set reach the domain", async () => {
    const { client, filters } = setup();
    const answer = await client.listAccounts(
      { integration: "hubspot", status: AccountStatus.ACTIVE },
      { headers: headers() },
    );
    expect(filters).toEqual([{ integration: "hubspot", status: "active" }]);
    expect(answer.accounts.map((a) => a.id)).toEqual([id(2)]);
  });

  it("when WatchAccounts filters by tenant and ids, then only matching changes are streamed, with the previous status", async () => {
    const event = (n: number, tenantId: string): AccountEvent => ({
      account: view(n, { tenantId, status: "active" }),
      previousStatus: "connecting",
      eventTime: time,
    });
    const { client } = setup({ events: [event(1, "a"), event(2, "b"), event(3, "a")] });
    const seen: [string, AccountStatus, AccountStatus][] = [];
    for await (const change of client.watchAccounts({ tenantId: "a", accountIds: [id(3)] }, { headers: headers() })) {
      seen.push([change.account?.id ?? "", change.account?.status ?? 0, change.previousStatus]);
    }
    expect(seen).toEqual([[id(3), AccountStatus.ACTIVE, AccountStatus.CONNECTING]]);
  });
});
