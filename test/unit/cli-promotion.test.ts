import { type ConnectRouter, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Connect, Io } from "../../src/cli/cli.js";
import { runCli } from "../../src/cli/program.js";
import type { Settings } from "../../src/cli/settings.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import {
  type DiffIntegrationsRequest,
  IntegrationDiffKind,
  type PromoteIntegrationsRequest,
  PromotionAction,
} from "../../src/gen/roomkey/v1/promotion_pb.js";

/**
 * `roomkey integration diff` and `promote` in process, over connect-es's
 * in-memory transport: the requests the flags make and what is printed.
 * test/integration/promotion.test.ts runs the built CLI against a real roomkey.
 */

function recordingIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    stdin: async () => "",
    env: {},
    cwd: "/work",
    readFile() {
      throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    },
    onInterrupt: () => () => undefined,
  };
  return { io, stdout: () => out.join(""), stderr: () => err.join("") };
}

function routed(routes: (router: ConnectRouter) => void) {
  const transport = createRouterTransport(routes);
  const settings: Settings[] = [];
  const connect: Connect = (service, resolved) => {
    settings.push(resolved);
    return createClient(service, transport);
  };
  return { connect, settings };
}

const token = ["--token", "admin-key-for-tests"];

/** Two pages: crm differs (with its secret), alpha is only in staging, and nothing on a page of its own. */
function diffServer(answers: "differences" | "none" = "differences") {
  const requests: DiffIntegrationsRequest[] = [];
  const { connect, settings } = routed((router) =>
    router.service(EnvironmentService, {
      diffIntegrations: (request) => {
        requests.push(request);
        if (answers === "none") return { integrations: [] };
        if (request.pageToken === "") {
          return {
            integrations: [
              {
                name: "alpha",
                kind: IntegrationDiffKind.ONLY_IN_FROM,
                fields: [
                  { field: "auth_type", fromValue: '"AUTH_TYPE_API_KEY"' },
                  { field: "oauth2.client_secret", secret: true },
                ],
              },
            ],
            nextPageToken: "page-2",
          };
        }
        return {
          integrations: [
            {
              name: "crm",
              kind: IntegrationDiffKind.DIFFERENT,
              fields: [
                { field: "oauth2.client_secret", secret: true },
                { field: "oauth2.scopes", fromValue: '["a","b"]', toValue: '["a"]' },
              ],
            },
          ],
        };
      },
    }),
  );
  return { connect, settings, requests };
}

describe("roomkey integration diff and promote, in process", () => {
  it("when diff runs, then every page is read, one row per field is printed in order, and secrets show only as set or different", async () => {
    const { connect, settings, requests } = diffServer();
    const run = recordingIo();
    const code = await runCli(
      [...token, "integration", "diff", "--from", "staging", "--to", "production"],
      run.io,
      connect,
    );
    expect(code).toBe(0);
    expect(settings.map((s) => s.environment)).toEqual(["production"]);
    expect(requests.map((r) => [r.fromEnvironment, r.pageSize, r.pageToken, r.includeSame])).toEqual([
      ["staging", 500, "", false],
      ["staging", 500, "page-2", false],
    ]);
    expect(run.stdout().trimEnd().split("\n")).toEqual([
      "INTEGRATION  KIND          FIELD                 FROM                 TO",
      'alpha        ONLY_IN_FROM  auth_type             "AUTH_TYPE_API_KEY"  -',
      "alpha        ONLY_IN_FROM  oauth2.client_secret  (secret) set         -",
      "crm          DIFFERENT     oauth2.client_secret  (secret) different   (secret) different",
      'crm          DIFFERENT     oauth2.scopes         ["a","b"]            ["a"]',
    ]);
    expect(run.stderr()).toContain("2 integration(s) differ");
  });

  it("when diff --exit-code finds differences, then it exits 3; when it finds none, then 0", async () => {
    const differing = diffServer();
    const run = recordingIo();
    const args = [...token, "-e", "production", "integration", "diff", "--from", "staging", "--exit-code"];
    expect(await runCli(args, run.io, differing.connect)).toBe(3);
    const same = diffServer("none");
    const quiet = recordingIo();
    expect(await runCli(args, quiet.io, same.connect)).toBe(0);
    expect(quiet.stdout()).toBe("no differences\n");
  });

  it("when diff --json runs, then stdout is one response with every page's integrations", async () => {
    const { connect } = diffServer();
    const run = recordingIo();
    const args = [...token, "--json", "-e", "production", "integration", "diff", "--from", "staging"];
    expect(await runCli(args, run.io, connect)).toBe(0);
    const printed = JSON.parse(run.stdout()) as { integrations: { name: string; kind: string }[] };
    expect(printed.integrations.map((i) => [i.name, i.kind])).toEqual([
      ["alpha", "INTEGRATION_DIFF_KIND_ONLY_IN_FROM"],
      ["crm", "INTEGRATION_DIFF_KIND_DIFFERENT"],
    ]);
  });

  it("when --to and --env name different environments, or promote gets names and --all, then it is a usage error and nothing is sent", async () => {
    const { connect, requests } = diffServer();
    const run = recordingIo();
    const diff = [...token, "-e", "qa", "integration", "diff", "--from", "staging", "--to", "production"];
    expect(await runCli(diff, run.io, connect)).toBe(2);
    expect(run.stderr()).toContain("name two environments");
    for (const args of [
      ["integration", "promote", "--from", "staging"],
      ["integration", "promote", "--from", "staging", "--all", "crm"],
      ["integration", "promote", "--from", "staging", "--all", "--keep", "oauth2.client_id,"],
    ]) {
      const bad = recordingIo();
      expect(await runCli([...token, "-e", "production", ...args], bad.io, connect), args.join(" ")).toBe(2);
    }
    expect(requests).toEqual([]);
  });

  it("when promote runs, then --keep becomes the field mask, and each change is a row with the target's value before and after", async () => {
    const requests: PromoteIntegrationsRequest[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        promoteIntegrations: (request) => {
          requests.push(request);
          return {
            dryRun: request.dryRun,
            promotions: [
              {
                name: "alpha",
                action: PromotionAction.CREATE,
                changes: [
                  { field: "auth_type", fromValue: '"AUTH_TYPE_OAUTH2"' },
                  { field: "oauth2.client_secret", secret: true },
                ],
              },
              {
                name: "crm",
                action: PromotionAction.UPDATE,
                changes: [{ field: "oauth2.scopes", fromValue: '["a","b"]', toValue: '["a"]' }],
              },
              { name: "keyed", action: PromotionAction.UNCHANGED },
            ],
          };
        },
      }),
    );
    const run = recordingIo();
    const args = [
      ...token,
      "-e",
      "production",
      "integration",
      "promote",
      "--from",
      "staging",
      "alpha",
      "crm",
      "keyed",
      "--keep",
      "oauth2.client_id,oauth2.client_secret",
      "--keep",
      "display_name",
      "--dry-run",
    ];
    expect(await runCli(args, run.io, connect)).toBe(0);
    expect(requests[0]).toMatchObject({
      fromEnvironment: "staging",
      names: ["alpha", "crm", "keyed"],
      all: false,
      dryRun: true,
      keepTargetFields: { paths: ["oauth2.client_id", "oauth2.client_secret", "display_name"] },
    });
    expect(run.stdout().trimEnd().split("\n")).toEqual([
      "INTEGRATION  ACTION     FIELD                 BEFORE  AFTER",
      'alpha        CREATE     auth_type             -       "AUTH_TYPE_OAUTH2"',
      "alpha        CREATE     oauth2.client_secret  -       (secret) set",
      'crm          UPDATE     oauth2.scopes         ["a"]   ["a","b"]',
      "keyed        UNCHANGED  -                     -       -",
    ]);
    expect(run.stderr()).toContain("dry run from staging, nothing was written: 1 to create, 1 to update, 1 unchanged");
  });
});
