import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { buildCliIfStale, fieldOf, rowsOf, runCli, runCliOk } from "../helpers/cli-runner.js";
import { type GrpcClient, grpcClient, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

/**
 * `roomkey connect-session …` and `account list --end-user`: the built CLI
 * (`dist/`), run as a child process against a real roomkey on real Redis and
 * FerretDB, with accounts checked against a local API-key provider.
 * test/integration/connect-sessions.test.ts covers the sessions themselves;
 * the helpers here are small copies of test/integration/cli-webhooks.test.ts's.
 */
const origin = "https://app.example";

let server: TestServer;
let keys: ApiKeyProvider;
let environments: GrpcClient<typeof EnvironmentService>;
let accounts: GrpcClient<typeof AccountService>;

beforeAll(async () => {
  keys = await startApiKeyProvider();
  server = await startTestServer();
  environments = grpcClient(EnvironmentService, server.grpcAddress);
  accounts = grpcClient(AccountService, server.grpcAddress);
  await buildCliIfStale();
}, 180_000);

afterAll(async () => {
  environments?.close();
  accounts?.close();
  await server?.stop();
  await keys?.stop();
});

const roomkey = (args: string[]) => runCli(server, args);
const ok = (args: string[]) => runCliOk(server, args);
const field = fieldOf;
const rows = rowsOf;

/** A new environment with the API-key integration `keyed`, checked against the local provider. */
async function newEnvironment(): Promise<string> {
  const env = randomEnvironmentName();
  await ok(["env", "create", env]);
  const integration = { ...apiKeyIntegration("keyed", keys.url), displayName: "Keyed CRM" };
  await environments.unary(
    EnvironmentService.method.putIntegration,
    { integration },
    metadataFor(env, server.adminKey),
  );
  return env;
}

describe("roomkey connect-session against a real roomkey", { timeout: 90_000 }, () => {
  it("when a session is created, then its secret (rkcs_<env>_…) and connect URL are shown once; get shows it and its integrations, never the secret; revoke ends it REVOKED", async () => {
    const env = await newEnvironment();
    const created = await ok([
      "-e",
      env,
      "connect-session",
      "create",
      "--end-user",
      "u-42",
      "--name",
      "Ada Lovelace",
      "--tag",
      "plan:pro",
      "--integration",
      "keyed",
      "--origin",
      origin,
      "--return-url",
      `${origin}/done`,
      "--label",
      "source=cli",
      "--lifetime",
      "1h",
    ]);
    const id = field(created.stdout, "id") ?? "";
    const secret = field(created.stdout, "secret") ?? "";
    expect(id).toMatch(/^cs_[0-9A-Za-z]{22}$/);
    expect(secret).toMatch(new RegExp(`^rkcs_${env}_`));
    expect(field(created.stdout, "connect url")).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:\\d+/connect\\?session=${encodeURIComponent(secret)}$`),
    );
    expect(created.stderr).toContain("shown this once");
    expect(field(created.stdout, "status")).toBe("OPEN");
    expect(field(created.stdout, "end user")).toBe("u-42 (Ada Lovelace)");
    expect(field(created.stdout, "tags")).toBe("plan:pro");
    expect(field(created.stdout, "tenant")).toBe("u-42");
    expect(field(created.stdout, "integrations")).toBe("keyed");
    expect(field(created.stdout, "origins")).toBe(origin);
    expect(field(created.stdout, "labels")).toBe("source=cli");
    const lifetime =
      Date.parse(field(created.stdout, "expires") ?? "") - Date.parse(field(created.stdout, "created") ?? "");
    expect(Math.abs(lifetime - 3_600_000)).toBeLessThanOrEqual(1_000);

    const got = await ok(["-e", env, "connect-session", "get", id]);
    expect(field(got.stdout, "id")).toBe(id);
    expect(field(got.stdout, "status")).toBe("OPEN");
    expect(field(got.stdout, "prefix")).toMatch(new RegExp(`^rkcs_${env}_\\w{4}…$`));
    const offered = got.stdout.slice(got.stdout.indexOf("\nINTEGRATION ") + 1);
    expect(offered.split("\n")[0]).toMatch(/^INTEGRATION +DISPLAY NAME +AUTH TYPE$/);
    expect(rows(offered)).toEqual([["keyed", "Keyed CRM", "API_KEY"]]);
    expect(got.stdout).not.toContain(secret.slice(`rkcs_${env}_`.length));
    const gotJson = await ok(["-e", env, "--json", "connect-session", "get", id]);
    expect(JSON.parse(gotJson.stdout)).toEqual({
      session: expect.objectContaining({ id, status: "CONNECT_SESSION_STATUS_OPEN", allowedOrigins: [origin] }),
      integrations: [{ name: "keyed", displayName: "Keyed CRM", authType: "AUTH_TYPE_API_KEY" }],
    });

    const revoked = await ok(["-e", env, "connect-session", "revoke", id]);
    expect(field(revoked.stdout, "status")).toBe("REVOKED");
    expect(field(revoked.stdout, "revoked")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(field((await ok(["-e", env, "connect-session", "get", id])).stdout, "status")).toBe("REVOKED");
  });

  it("when create is given an origin with a path, then roomkey refuses it (exit 1) naming allowed_origins[0], in text and in --json", async () => {
    const env = await newEnvironment();
    const args = ["connect-session", "create", "--end-user", "u-1", "--integration", "keyed"];
    const bad = await roomkey(["-e", env, ...args, "--origin", `${origin}/path`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT /m);
    expect(bad.stderr).toMatch(/^ {2}field allowed_origins\[0\]: /m);
    expect(bad.stdout).toBe("");
    const json = await roomkey(["-e", env, "--json", ...args, "--origin", `${origin}/path`]);
    expect(json.code).toBe(1);
    const { error } = JSON.parse(json.stderr);
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.fieldViolations.map((v: { field: string }) => v.field)).toContain("allowed_origins[0]");
  });

  it("when neither --integration nor --account is given, then it is a usage error (exit 2) and nothing is made", async () => {
    const run = await roomkey(["-e", "development", "connect-session", "create", "--end-user", "u-1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--integration: give at least one");
  });
});

describe("roomkey account list by end user against a real roomkey", { timeout: 90_000 }, () => {
  it("when two end users hold accounts, then --end-user and --end-user-tag list only theirs, and each shows its end user", async () => {
    const env = await newEnvironment();
    keys.allow("key-cli-eu", { id: "r-1", name: "Remote One" });
    const connect = async (endUser: { id: string; displayName?: string; tags: string[] }) => {
      const { account } = await accounts.unary(
        AccountService.method.connectAccount,
        { integration: "keyed", endUser, credential: { case: "apiKey", value: { key: "key-cli-eu" } } },
        metadataFor(env, server.adminKey),
      );
      return account?.id ?? "";
    };
    const ada = await connect({ id: "ada", displayName: "Ada Lovelace", tags: ["plan:pro"] });
    const bob = await connect({ id: "bob", tags: ["plan:free"] });

    const listed = async (...filter: string[]) => {
      const run = await ok(["-e", env, "account", "list", ...filter]);
      expect(run.stdout.split("\n")[0]).toMatch(/^ID +INTEGRATION +TENANT +STATUS +REMOTE +UPDATED +END USER$/);
      return rows(run.stdout).map((row) => [row[0], row.at(-1)]);
    };
    expect(await listed("--end-user", "ada")).toEqual([[ada, "ada (Ada Lovelace)"]]);
    expect(await listed("--end-user", "bob")).toEqual([[bob, "bob"]]);
    expect(await listed("--end-user-tag", "plan:free")).toEqual([[bob, "bob"]]);
    expect(await listed("--end-user", "carol")).toEqual([]);
    expect((await listed()).map(([id]) => id).sort()).toEqual([ada, bob].sort());
    const json = await ok(["-e", env, "--json", "account", "list", "--end-user-tag", "plan:pro"]);
    expect(JSON.parse(json.stdout).accounts).toEqual([
      expect.objectContaining({ id: ada, endUser: { id: "ada", displayName: "Ada Lovelace", tags: ["plan:pro"] } }),
    ]);

    expect(field((await ok(["-e", env, "account", "get", ada])).stdout, "end user")).toBe("ada (Ada Lovelace)");
  });
});
