import { type ConnectRouter, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Connect, Io } from "../../src/cli/cli.js";
import { runCli } from "../../src/cli/program.js";
import {
  AccountService,
  AccountStatus,
  type ListAccountsRequest,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import {
  ConnectSessionStatus,
  type CreateConnectSessionRequest,
} from "../../src/gen/roomkey/v1/connect_sessions_pb.js";

/**
 * `roomkey connect-session …` and the end-user filters of `account list`, in
 * process over connect-es's in-memory transport (the helpers are small copies
 * of test/unit/cli-program.test.ts's own).
 * test/integration/cli-connect-sessions.test.ts runs the built CLI against a
 * real roomkey.
 */

const sessionId = "cs_0Nm2bqZp8tQy4rW1xKs9Lf";
const accountId = "acc_0Nm2bqZp8tQy4rW1xKs9Lf";
const secret = "rkcs_staging_s3cret";
const connectUrl = `https://roomkey.example/connect?session=${secret}`;
const admin = ["-e", "staging", "--token", "admin-key-for-tests"];

function recordingIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    stdin: async () => "",
    env: {},
    cwd: "/work",
    readFile(path) {
      throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: "ENOENT" });
    },
    onInterrupt: () => () => undefined,
  };
  return { io, stdout: () => out.join(""), stderr: () => err.join("") };
}

function routed(routes: (router: ConnectRouter) => void): Connect {
  const transport = createRouterTransport(routes);
  return (service) => createClient(service, transport);
}

/** The value of one `label  value` line of a fields view. */
function field(stdout: string, label: string): string | undefined {
  return new RegExp(`^${label} {2,}(.*)$`, "m").exec(stdout)?.[1];
}

describe("roomkey connect-session, in process", () => {
  it("when connect-session create answers, then the flags become the request, the secret and connect URL are printed once and stderr says so", async () => {
    const requests: CreateConnectSessionRequest[] = [];
    const connect = routed((router) =>
      router.service(AccountService, {
        createConnectSession: (request) => {
          requests.push(request);
          return {
            session: {
              id: sessionId,
              endUser: request.endUser,
              tenantId: request.tenantId || request.endUser?.id,
              integrations: request.integrations,
              allowedOrigins: request.allowedOrigins,
              status: ConnectSessionStatus.OPEN,
              expireTime: { seconds: 1_795_826_576n, nanos: 0 },
            },
            secret,
            connectUrl,
          };
        },
      }),
    );
    const run = recordingIo();
    const args = [
      "connect-session",
      "create",
      "--end-user",
      "u-42",
      "--name",
      "Ada Lovelace",
      "--email",
      "ada@example.com",
      "--tag",
      "plan:pro",
      "--tag",
      "eu",
      "--integration",
      "hubspot",
      "--integration",
      "acme",
      "--origin",
      "https://app.example",
    ];
    const more = ["--lifetime", "1h30m", "--return-url", "https://app.example/done", "--label", "source=cli"];
    expect(await runCli([...admin, ...args, ...more, "--tenant", "t-7"], run.io, connect)).toBe(0);
    expect(requests[0]).toMatchObject({
      endUser: { id: "u-42", displayName: "Ada Lovelace", email: "ada@example.com", tags: ["plan:pro", "eu"] },
      tenantId: "t-7",
      integrations: ["hubspot", "acme"],
      accountId: "",
      allowedOrigins: ["https://app.example"],
      returnUrl: "https://app.example/done",
      labels: { source: "cli" },
    });
    expect(requests[0]?.lifetime?.seconds).toBe(5_400n);
    const out = run.stdout();
    expect(field(out, "id")).toBe(sessionId);
    expect(field(out, "status")).toBe("OPEN");
    expect(field(out, "end user")).toBe("u-42 (Ada Lovelace)");
    expect(field(out, "tags")).toBe("plan:pro eu");
    expect(field(out, "integrations")).toBe("hubspot acme");
    expect(field(out, "origins")).toBe("https://app.example");
    expect(field(out, "expires")).toBe("2026-11-28T00:42:56Z");
    expect(field(out, "secret")).toBe(secret);
    expect(field(out, "connect url")).toBe(connectUrl);
    expect(run.stderr()).toContain("shown this once");

    // --json is the response as the API gives it, secret included; unset flags stay unset.
    const json = recordingIo();
    const minimal = ["connect-session", "create", "--end-user", "u-1", "--integration", "acme"];
    expect(await runCli([...admin, "--json", ...minimal], json.io, connect)).toBe(0);
    expect(requests[1]?.lifetime).toBeUndefined();
    expect(requests[1]).toMatchObject({ tenantId: "", allowedOrigins: [], labels: {}, endUser: { displayName: "" } });
    expect(JSON.parse(json.stdout())).toEqual({
      session: {
        id: sessionId,
        endUser: { id: "u-1" },
        tenantId: "u-1",
        integrations: ["acme"],
        status: "CONNECT_SESSION_STATUS_OPEN",
        expireTime: "2026-11-28T00:42:56Z",
      },
      secret,
      connectUrl,
    });
    expect(json.stderr()).toContain("shown this once");
  });

  it("when connect-session create lacks --end-user, has neither --integration nor --account, or a malformed flag, then it is exit 2 and nothing is sent", async () => {
    const requests: CreateConnectSessionRequest[] = [];
    const connect = routed((router) =>
      router.service(AccountService, {
        createConnectSession: (request) => {
          requests.push(request);
          return { session: { id: sessionId, accountId: request.accountId, reauthorize: true }, secret, connectUrl };
        },
      }),
    );
    const refused: [string[], RegExp][] = [
      [["--integration", "acme"], /required option '--end-user <id>' not specified/],
      [["--end-user", "u-1"], /--integration: give at least one/],
      [["--end-user", "u-1", "--integration", "acme", "--lifetime", "1y"], /'--lifetime <duration>' argument '1y'/],
      [["--end-user", "u-1", "--integration", "acme", "--label", "nope"], /'--label <key=value>' argument 'nope'/],
    ];
    for (const [flags, said] of refused) {
      const run = recordingIo();
      expect(await runCli([...admin, "connect-session", "create", ...flags], run.io, connect), flags.join(" ")).toBe(2);
      expect(run.stderr()).toMatch(said);
    }
    expect(requests).toHaveLength(0);

    // Re-authorizing an account needs no --integration: the account's own.
    const run = recordingIo();
    const reauth = ["connect-session", "create", "--end-user", "u-1", "--account", accountId];
    expect(await runCli([...admin, ...reauth], run.io, connect)).toBe(0);
    expect(requests[0]).toMatchObject({ accountId, integrations: [] });
    expect(field(run.stdout(), "account")).toBe(accountId);
    expect(field(run.stdout(), "reauthorizes")).toBe("yes");
  });

  it("when connect-session get and revoke answer, then get shows the session and the integrations it offers, never a secret, and revoke shows it REVOKED", async () => {
    const session = {
      id: sessionId,
      endUser: { id: "u-42" },
      integrations: ["keyed", "crm", "gone"],
      status: ConnectSessionStatus.OPEN,
      displayPrefix: "rkcs_staging_a1B2…",
    };
    const asked: string[] = [];
    const connect = routed((router) =>
      router.service(AccountService, {
        getConnectSession: (request) => {
          asked.push(`get ${request.id}`);
          return {
            session,
            integrations: [
              { name: "keyed", displayName: "Keyed CRM", authType: AuthType.API_KEY },
              { name: "crm", authType: AuthType.OAUTH2 },
            ],
          };
        },
        revokeConnectSession: (request) => {
          asked.push(`revoke ${request.id}`);
          return { session: { ...session, status: ConnectSessionStatus.REVOKED, revokeTime: { seconds: 1n } } };
        },
      }),
    );
    const got = recordingIo();
    expect(await runCli([...admin, "connect-session", "get", sessionId], got.io, connect)).toBe(0);
    expect(field(got.stdout(), "end user")).toBe("u-42");
    expect(field(got.stdout(), "prefix")).toBe("rkcs_staging_a1B2…");
    expect(got.stdout()).not.toMatch(/^secret/m);
    const lines = got.stdout().trimEnd().split("\n");
    const header = lines.findIndex((line) => /^INTEGRATION +DISPLAY NAME +AUTH TYPE$/.test(line));
    expect(header).toBeGreaterThan(0);
    expect(lines.slice(header + 1)).toEqual([
      expect.stringMatching(/^keyed +Keyed CRM +API_KEY$/),
      expect.stringMatching(/^crm +- +OAUTH2$/),
    ]);

    const revoked = recordingIo();
    expect(await runCli([...admin, "connect-session", "revoke", sessionId], revoked.io, connect)).toBe(0);
    expect(field(revoked.stdout(), "status")).toBe("REVOKED");
    expect(field(revoked.stdout(), "revoked")).toBe("1970-01-01T00:00:01Z");
    const json = recordingIo();
    expect(await runCli([...admin, "--json", "connect-session", "revoke", sessionId], json.io, connect)).toBe(0);
    expect(JSON.parse(json.stdout()).session.status).toBe("CONNECT_SESSION_STATUS_REVOKED");
    expect(asked).toEqual([`get ${sessionId}`, `revoke ${sessionId}`, `revoke ${sessionId}`]);
  });
});

describe("roomkey account and end users, in process", () => {
  it("when account list is given --end-user and --end-user-tag, then they become the request's filters and each row shows its end user", async () => {
    const requests: ListAccountsRequest[] = [];
    const connect = routed((router) =>
      router.service(AccountService, {
        listAccounts: (request) => {
          requests.push(request);
          return {
            accounts: [
              {
                id: accountId,
                integration: "acme",
                tenantId: "ada",
                status: AccountStatus.ACTIVE,
                endUser: { id: "ada", displayName: "Ada Lovelace" },
              },
              { id: "acc_2", integration: "acme", tenantId: "t-9", status: AccountStatus.ACTIVE },
            ],
          };
        },
        getAccount: ({ id }) => ({ account: { id, endUser: { id: "ada", displayName: "Ada Lovelace" } } }),
      }),
    );
    const run = recordingIo();
    const filters = ["--end-user", "ada", "--end-user-tag", "plan:pro"];
    expect(await runCli([...admin, "account", "list", ...filters], run.io, connect)).toBe(0);
    expect(requests[0]).toMatchObject({ endUserId: "ada", endUserTag: "plan:pro", tenantId: "", integration: "" });
    const lines = run.stdout().trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +INTEGRATION +TENANT +STATUS +REMOTE +UPDATED +END USER$/);
    expect(lines[1]).toMatch(new RegExp(`^${accountId} +acme +ada +ACTIVE +- +- +ada \\(Ada Lovelace\\)$`));
    expect(lines[2]).toMatch(/^acc_2 +acme +t-9 +ACTIVE +- +- +-$/);

    expect(await runCli([...admin, "account", "list"], recordingIo().io, connect)).toBe(0);
    expect(requests[1]).toMatchObject({ endUserId: "", endUserTag: "" });

    const got = recordingIo();
    expect(await runCli([...admin, "account", "get", accountId], got.io, connect)).toBe(0);
    expect(field(got.stdout(), "end user")).toBe("ada (Ada Lovelace)");
  });
});
