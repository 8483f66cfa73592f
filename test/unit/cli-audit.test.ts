import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Connect, Io } from "../../src/cli/cli.js";
import { parseSince } from "../../src/cli/commands/audit.js";
import { runCli } from "../../src/cli/program.js";
import { AuditActorKind, type ListAuditEventsRequest } from "../../src/gen/roomkey/v1/audit_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";

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

const admin = ["-e", "production", "--token", "admin-key-for-tests"];

describe("roomkey audit list", () => {
  it("when filters are given, then they become the request, and the events print newest first with their fields", async () => {
    const requests: ListAuditEventsRequest[] = [];
    const transport = createRouterTransport((router) =>
      router.service(EnvironmentService, {
        listAuditEvents: (request) => {
          requests.push(request);
          return {
            events: [
              {
                id: "ae_1",
                time: timestampFromDate(new Date("2026-12-01T10:00:00Z")),
                actorKind: AuditActorKind.UNAUTHENTICATED,
                actorId: "tok_0VcEM5ZaIpd7rR7sQAS2EV",
                method: "roomkey.v1.TokenService/ListTokens",
                outcome: "PERMISSION_DENIED",
                reason: "TOKEN_WRONG_ENVIRONMENT",
                requestId: "req-1",
                peer: "10.0.0.1",
                details: { token_environment: "staging" },
              },
            ],
            nextPageToken: "p2",
          };
        },
      }),
    );
    const connect: Connect = (service) => createClient(service, transport);
    const run = recordingIo();
    const code = await runCli(
      [
        ...admin,
        "audit",
        "list",
        "--since",
        "2026-12-01T00:00:00Z",
        "--actor",
        "tok_0VcEM5ZaIpd7rR7sQAS2EV",
        "--method",
        "roomkey.v1.TokenService/ListTokens",
        "--page-size",
        "500",
      ],
      run.io,
      connect,
    );
    expect(code).toBe(0);
    const [request] = requests;
    expect(request?.startTime && timestampDate(request.startTime).toISOString()).toBe("2026-12-01T00:00:00.000Z");
    expect(request?.endTime).toBeUndefined();
    expect(request).toMatchObject({
      actorId: "tok_0VcEM5ZaIpd7rR7sQAS2EV",
      method: "roomkey.v1.TokenService/ListTokens",
      resource: "",
      pageSize: 500,
    });
    const [header, row] = run.stdout().split("\n");
    expect(header).toMatch(/^TIME +ACTOR +METHOD +RESOURCE +OUTCOME +REASON +REQUEST ID +PEER +DETAILS$/);
    expect(row).toContain("UNAUTHENTICATED tok_0VcEM5ZaIpd7rR7sQAS2EV");
    expect(row).toContain("TokenService/ListTokens");
    expect(row).toContain("token_environment=staging");
    // The next page needs the same start time: the hint names it exactly, whatever --since said.
    expect(run.stderr()).toContain("more: run it with --since 2026-12-01T00:00:00.000Z --page-token p2");
  });

  it("when --since is malformed or the page size is out of range, then nothing is sent and the exit code is 2", async () => {
    let sent = 0;
    const transport = createRouterTransport((router) =>
      router.service(EnvironmentService, {
        listAuditEvents: () => {
          sent++;
          return {};
        },
      }),
    );
    const connect: Connect = (service) => createClient(service, transport);
    for (const args of [
      ["--since", "yesterday"],
      ["--page-size", "501"],
    ]) {
      const run = recordingIo();
      expect(await runCli([...admin, "audit", "list", ...args], run.io, connect)).toBe(2);
    }
    expect(sent).toBe(0);
  });

  it("when --since is a duration, then it means that long before now", () => {
    const now = new Date("2026-12-02T00:00:00Z");
    expect(timestampDate(parseSince("24h", () => now)).toISOString()).toBe("2026-12-01T00:00:00.000Z");
  });

  it("when env create is given --audit-retention, then the setting is sent", async () => {
    const sent: (bigint | undefined)[] = [];
    const transport = createRouterTransport((router) =>
      router.service(EnvironmentService, {
        createEnvironment: (request) => {
          sent.push(request.settings?.auditRetention?.seconds);
          return { environment: { name: "qa", settings: request.settings } };
        },
      }),
    );
    const connect: Connect = (service) => createClient(service, transport);
    const run = recordingIo();
    expect(await runCli([...admin, "env", "create", "qa", "--audit-retention", "7d"], run.io, connect)).toBe(0);
    expect(sent).toEqual([7n * 86_400n]);
    expect(run.stdout()).toMatch(/audit retention +7d/);
  });
});
