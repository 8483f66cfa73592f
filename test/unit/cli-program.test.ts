import { Code, ConnectError, type ConnectRouter, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Connect, Io } from "../../src/cli/cli.js";
import { runCli } from "../../src/cli/program.js";
import type { Settings } from "../../src/cli/settings.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { AuthType } from "../../src/gen/roomkey/v1/common_pb.js";
import {
  type CreateWebhookEndpointRequest,
  EnvironmentService,
  type Integration,
  type ListWebhookDeliveriesRequest,
  type RotateWebhookEndpointSecretRequest,
  type UpdateWebhookEndpointRequest,
} from "../../src/gen/roomkey/v1/environment_service_pb.js";
import {
  type CreateTokenRequest,
  TokenService,
  TokenState,
  VerifyStatus,
} from "../../src/gen/roomkey/v1/token_service_pb.js";
import { WebhookDeliveryStatus } from "../../src/gen/roomkey/v1/webhooks_pb.js";

/**
 * The CLI end to end within one process: the real command tree and output,
 * over connect-es's in-memory transport instead of a socket, with a recorded
 * stdout, stderr and standard input. test/integration/cli.test.ts runs the
 * built CLI against a real roomkey.
 */

const tokenId = "tok_0VcEM5ZaIpd7rR7sQAS2EV";
const accountId = "acc_0Nm2bqZp8tQy4rW1xKs9Lf";
const endpointId = "we_0VcEM5ZaJ2kq8mT4xR6bWd";
const eventId = "evt_0VcEN1d3Qb7sLx2pK9aZfH";

function recordingIo(options: { env?: Record<string, string>; files?: Record<string, string>; stdin?: string } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  let interrupt: (() => void) | undefined;
  const io: Io = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    stdin: async () => options.stdin ?? "",
    env: options.env ?? {},
    cwd: "/work",
    readFile(path) {
      const text = options.files?.[path];
      if (text === undefined)
        throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: "ENOENT" });
      return text;
    },
    onInterrupt(handler) {
      interrupt = handler;
      return () => {
        interrupt = undefined;
      };
    },
  };
  return { io, stdout: () => out.join(""), stderr: () => err.join(""), interrupt: () => interrupt?.() };
}

/** A Connect that serves every client from `routes` and records the settings each was made with. */
function routed(routes: (router: ConnectRouter) => void) {
  const transport = createRouterTransport(routes);
  const settings: Settings[] = [];
  const connect: Connect = (service, resolved) => {
    settings.push(resolved);
    return createClient(service, transport);
  };
  return { connect, settings };
}

const admin = ["-e", "staging", "--token", "admin-key-for-tests"];

describe("the roomkey CLI, in process", () => {
  it("when token create answers, then the flags become the request, the secret is printed once and stderr says so", async () => {
    const requests: CreateTokenRequest[] = [];
    const { connect } = routed((router) =>
      router.service(TokenService, {
        createToken: (request) => {
          requests.push(request);
          return { token: { id: tokenId, name: request.name, scopes: request.scopes }, secret: "rk_staging_s3cret" };
        },
      }),
    );
    const run = recordingIo();
    const args = ["token", "create", "--name", "ci", "--scope", "tokens:read", "--scope", "accounts:read"];
    const code = await runCli([...admin, ...args, "--ttl", "30d"], run.io, connect);
    expect(code).toBe(0);
    expect(requests[0]).toMatchObject({ name: "ci", scopes: ["tokens:read", "accounts:read"] });
    expect(requests[0]?.ttl?.seconds).toBe(2_592_000n);
    expect(run.stdout()).toMatch(/^secret +rk_staging_s3cret$/m);
    expect(run.stdout()).toMatch(new RegExp(`^id +${tokenId}$`, "m"));
    expect(run.stderr()).toContain("shown this once");

    const json = recordingIo();
    expect(await runCli([...admin, "--json", ...args], json.io, connect)).toBe(0);
    expect(JSON.parse(json.stdout())).toEqual({
      token: { id: tokenId, name: "ci", scopes: ["tokens:read", "accounts:read"] },
      secret: "rk_staging_s3cret",
    });
    expect(requests[1]?.ttl).toBeUndefined();
  });

  it("when token create replays an idempotency key, then no secret line is printed and the API's notice is", async () => {
    const { connect } = routed((router) =>
      router.service(TokenService, {
        createToken: () => ({ token: { id: tokenId }, replayed: true, notice: "the secret is not shown again" }),
      }),
    );
    const run = recordingIo();
    const args = ["token", "create", "--name", "ci", "--scope", "tokens:read", "--idempotency-key", "k1"];
    expect(await runCli([...admin, ...args], run.io, connect)).toBe(0);
    expect(run.stdout()).not.toMatch(/^secret/m);
    expect(run.stderr()).toContain("the secret is not shown again");
  });

  it("when roomkey refuses a call, then stderr has the code, the reason, the metadata and the field, and the exit code is 1", async () => {
    const refusal = new ConnectError("scopes[0]: value must be in list", Code.InvalidArgument, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "INVALID_REQUEST", domain: "roomkey.dev", metadata: { k: "v" } } },
      {
        desc: BadRequestSchema,
        value: { fieldViolations: [{ field: "scopes[0]", description: "value must be in list" }] },
      },
    ]);
    const { connect } = routed((router) =>
      router.service(TokenService, {
        createToken: () => {
          throw refusal;
        },
      }),
    );
    const args = ["token", "create", "--name", "ci", "--scope", "nope"];
    const run = recordingIo();
    expect(await runCli([...admin, ...args], run.io, connect)).toBe(1);
    expect(run.stderr()).toMatch(/^error: INVALID_ARGUMENT INVALID_REQUEST: scopes\[0\]: value must be in list$/m);
    expect(run.stderr()).toMatch(/^ {2}k: v$/m);
    expect(run.stderr()).toMatch(/^ {2}field scopes\[0\]: value must be in list$/m);
    expect(run.stdout()).toBe("");

    const json = recordingIo();
    expect(await runCli([...admin, "--json", ...args], json.io, connect)).toBe(1);
    expect(JSON.parse(json.stderr()).error).toMatchObject({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_REQUEST",
      fieldViolations: [{ field: "scopes[0]" }],
    });
  });

  it("when roomkey refuses the token, then stderr also says where the token came from", async () => {
    const { connect } = routed((router) =>
      router.service(TokenService, {
        listTokens: () => {
          throw new ConnectError("unknown token", Code.Unauthenticated, undefined, [
            { desc: ErrorInfoSchema, value: { reason: "CREDENTIALS_INVALID", domain: "roomkey.dev" } },
          ]);
        },
      }),
    );
    const run = recordingIo({ env: { ROOMKEY_ENVIRONMENT: "staging", ROOMKEY_TOKEN: "stale" } });
    expect(await runCli(["token", "list"], run.io, connect)).toBe(1);
    expect(run.stderr()).toContain("UNAUTHENTICATED CREDENTIALS_INVALID: unknown token");
    expect(run.stderr()).toContain("(the token came from ROOMKEY_TOKEN)");
  });

  it("when token verify finds the token not valid, then it prints why and exits 3; a valid one exits 0", async () => {
    const { connect } = routed((router) =>
      router.service(TokenService, {
        verifyToken: ({ token }) =>
          token === "rk_staging_good"
            ? { valid: true, status: VerifyStatus.VALID, tokenId, scopes: ["tokens:read"] }
            : { valid: false, status: VerifyStatus.REVOKED, tokenId },
      }),
    );
    const bad = recordingIo();
    expect(await runCli([...admin, "token", "verify", "rk_staging_bad"], bad.io, connect)).toBe(3);
    expect(bad.stdout()).toMatch(/^valid +no$/m);
    expect(bad.stdout()).toMatch(/^status +REVOKED$/m);
    // From standard input, as `printf %s "$T" | roomkey token verify` sends it, line break and all.
    const good = recordingIo({ stdin: "rk_staging_good\n" });
    expect(await runCli([...admin, "token", "verify", "-"], good.io, connect)).toBe(0);
    expect(good.stdout()).toMatch(/^valid +yes$/m);
  });

  it("when a flag is malformed or missing, then the usage error names it, nothing is sent and the exit code is 2", async () => {
    const { connect, settings } = routed(() => undefined);
    const cases: [string[], RegExp][] = [
      [
        ["token", "create", "--name", "ci", "--scope", "tokens:read", "--ttl", "3x"],
        /'--ttl <duration>' argument '3x'/,
      ],
      [["token", "create", "--name", "ci"], /--scope: give at least one/],
      [["token", "create", "--scope", "tokens:read"], /required option '--name <name>'/],
      [["token", "list", "--state", "gone"], /'--state <state>' argument 'gone' is invalid\. Use one of: active/],
      [["account", "connect", "--integration", "a", "--tenant", "t"], /no credential: give --api-key/],
      [["account", "connect", "--integration", "a", "--tenant", "t", "--api-key", "k", "--username", "u"], /one kind/],
      [["account", "list", "--page-size", "0"], /'--page-size <n>' argument '0'/],
      [["token", "get"], /missing required argument 'id'/],
      [["tokens", "list"], /unknown command 'tokens'/],
      [["--addr", "ftp://x", "token", "list"], /--addr: address "ftp:\/\/x": want host:port/],
    ];
    for (const [args, said] of cases) {
      const run = recordingIo();
      expect(await runCli([...admin, ...args], run.io, connect), args.join(" ")).toBe(2);
      expect(run.stderr(), args.join(" ")).toMatch(said);
    }
    expect(settings).toEqual([]);
  });

  it("when no environment is named, then the CLI refuses with exit 2 and says how to name one", async () => {
    const { connect, settings } = routed(() => undefined);
    const run = recordingIo({ env: { ROOMKEY_TOKEN: "t" } });
    expect(await runCli(["token", "list"], run.io, connect)).toBe(2);
    expect(run.stderr()).toContain("no environment: pass --env <name> (-e) or set ROOMKEY_ENVIRONMENT");
    expect(settings).toEqual([]);
  });

  it("when flags, variables and the local admin key all say something, then a flag wins over its variable and the file comes last", async () => {
    const { connect, settings } = routed((router) => router.service(TokenService, { listTokens: () => ({}) }));
    const files = { "/work/.data/admin-key": "local-admin-key\n" };
    const env = { ROOMKEY_ENVIRONMENT: "staging", ROOMKEY_ADDR: "roomkey.internal:50051" };
    await runCli(["token", "list"], recordingIo({ env, files }).io, connect);
    await runCli(["-e", "qa", "--addr", "localhost:1", "token", "list"], recordingIo({ env, files }).io, connect);
    await runCli(["token", "list"], recordingIo({ env: { ...env, ROOMKEY_TOKEN: "from-env" }, files }).io, connect);
    expect(settings).toEqual([
      {
        addr: "roomkey.internal:50051",
        environment: "staging",
        token: "local-admin-key",
        tokenSource: ".data/admin-key",
      },
      { addr: "localhost:1", environment: "qa", token: "local-admin-key", tokenSource: ".data/admin-key" },
      { addr: "roomkey.internal:50051", environment: "staging", token: "from-env", tokenSource: "ROOMKEY_TOKEN" },
    ]);
    const none = recordingIo({ env });
    expect(await runCli(["token", "list"], none.io, connect)).toBe(2);
    expect(none.stderr()).toContain("no token: pass --token, set ROOMKEY_TOKEN, or run where scripts/start wrote");
  });

  it("when env create names an environment, then the call goes to that environment whatever --env says", async () => {
    const { connect, settings } = routed((router) =>
      router.service(EnvironmentService, {
        createEnvironment: (request, context) => ({
          environment: {
            name: context.requestHeader.get("roomkey-environment") ?? "",
            displayName: request.displayName,
            settings: request.settings,
          },
        }),
      }),
    );
    const run = recordingIo();
    const args = ["env", "create", "qa", "--display-name", "QA", "--default-token-lifetime", "90d"];
    expect(await runCli([...admin, ...args], run.io, connect)).toBe(0);
    expect(settings[0]?.environment).toBe("qa");
    expect(run.stdout()).toMatch(/^display name +QA$/m);
    expect(run.stdout()).toMatch(/^default token lifetime +90d$/m);
  });

  it("when integration put reads a YAML file, then the request carries the integration it decodes to", async () => {
    const received: Integration[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        putIntegration: ({ integration }) => {
          if (integration) received.push(integration);
          return { integration, created: true };
        },
      }),
    );
    const yaml = [
      "# an API key integration",
      "name: acme",
      "authType: AUTH_TYPE_API_KEY",
      "credentialCheck:",
      "  url: https://api.acme.example/me",
      "  account_id_path: data.id # proto names work too",
    ].join("\n");
    const run = recordingIo({ files: { "/work/integrations/acme.yaml": yaml } });
    expect(await runCli([...admin, "integration", "put", "integrations/acme.yaml"], run.io, connect)).toBe(0);
    expect(received[0]).toMatchObject({
      name: "acme",
      authType: AuthType.API_KEY,
      credentialCheck: { url: "https://api.acme.example/me", accountIdPath: "data.id" },
    });
    expect(run.stdout()).toMatch(/\(created\)$/m);
  });

  it("when an integration file has a misspelt field or is not an integration, then nothing is sent and the error names the file and the field", async () => {
    const { connect, settings } = routed(() => undefined);
    const files = {
      "/work/typo.yaml": "name: acme\nauthTyp: AUTH_TYPE_API_KEY\n",
      "/work/bad.json": '{"name": "acme",}',
      "/work/list.yaml": "- name: acme\n",
    };
    const cases: [string, RegExp][] = [
      ["typo.yaml", /typo\.yaml: .*"authTyp" is unknown/],
      ["bad.json", /bad\.json: .*JSON/],
      ["list.yaml", /list\.yaml: want an integration/],
      ["missing.yaml", /cannot read missing\.yaml/],
    ];
    for (const [file, said] of cases) {
      const run = recordingIo({ files });
      expect(await runCli([...admin, "integration", "put", file], run.io, connect), file).toBe(2);
      expect(run.stderr(), file).toMatch(said);
    }
    expect(settings).toEqual([]);
  });

  it("when account watch runs, then each event is printed as it comes, and Ctrl-C ends it with exit 0", async () => {
    const { connect } = routed((router) =>
      router.service(AccountService, {
        async *watchAccounts(_request, context) {
          yield {
            account: { id: accountId, integration: "acme", tenantId: "t-1", status: AccountStatus.ACTIVE },
            previousStatus: AccountStatus.CONNECTING,
          };
          await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
        },
      }),
    );
    for (const json of [false, true]) {
      const run = recordingIo();
      const running = runCli([...admin, ...(json ? ["--json"] : []), "account", "watch"], run.io, connect);
      while (!run.stdout().includes(accountId)) await new Promise((resolve) => setTimeout(resolve, 5));
      run.interrupt();
      expect(await running).toBe(0);
      const lines = run.stdout().trimEnd().split("\n");
      if (json) {
        expect(lines.map((line) => JSON.parse(line))).toEqual([
          {
            account: { id: accountId, integration: "acme", tenantId: "t-1", status: "ACCOUNT_STATUS_ACTIVE" },
            previousStatus: "ACCOUNT_STATUS_CONNECTING",
          },
        ]);
      } else {
        expect(lines[0]).toMatch(/^TIME +ACCOUNT +INTEGRATION +TENANT +CHANGE +DETAIL$/);
        expect(lines[1]).toMatch(new RegExp(`^- +${accountId} acme +t-1 +CONNECTING -> ACTIVE$`));
      }
      expect(run.stderr()).toContain("Ctrl-C");
    }
  });

  it("when the watch fails, then its error is printed and the exit code is 1", async () => {
    const { connect } = routed((router) =>
      router.service(AccountService, {
        // biome-ignore lint/correctness/useYield: a stream that fails before its first event.
        async *watchAccounts() {
          throw new ConnectError("the watcher fell behind", Code.ResourceExhausted, undefined, [
            { desc: ErrorInfoSchema, value: { reason: "WATCH_TOO_SLOW", domain: "roomkey.dev" } },
          ]);
        },
      }),
    );
    const run = recordingIo();
    expect(await runCli([...admin, "account", "watch"], run.io, connect)).toBe(1);
    expect(run.stderr()).toContain("RESOURCE_EXHAUSTED WATCH_TOO_SLOW: the watcher fell behind");
  });

  it("when account connect --wait sees the handshake fail, then it prints the failed account and exits 3", async () => {
    let reads = 0;
    const account = { id: accountId, integration: "acme", tenantId: "t-1" };
    const { connect } = routed((router) =>
      router.service(AccountService, {
        connectAccount: (request) => {
          expect(request.credential).toMatchObject({ case: "apiKey", value: { key: "sk_from_stdin" } });
          return { account: { ...account, status: AccountStatus.CONNECTING } };
        },
        getAccount: () => {
          reads++;
          const status = reads < 2 ? AccountStatus.CONNECTING : AccountStatus.FAILED;
          return { account: { ...account, status, statusReason: "The API key is not valid." } };
        },
      }),
    );
    const run = recordingIo({ stdin: "sk_from_stdin\n" });
    const args = ["account", "connect", "--integration", "acme", "--tenant", "t-1", "--api-key", "-", "--wait", "10s"];
    expect(await runCli([...admin, ...args], run.io, connect)).toBe(3);
    expect(reads).toBe(2);
    expect(run.stdout()).toMatch(/^status +FAILED$/m);
    expect(run.stdout()).toMatch(/^status reason +The API key is not valid\.$/m);
  });

  it("when --help is asked of a subcommand, then it lists the command's flags, the global flags and the contract's scopes", async () => {
    const run = recordingIo();
    expect(await runCli(["token", "create", "--help"], run.io, routed(() => undefined).connect)).toBe(0);
    expect(run.stdout()).toContain("Usage: roomkey token create [options]");
    expect(run.stdout()).toMatch(/--ttl <duration>/);
    expect(run.stdout()).toMatch(/Global Options:[\s\S]*-e, --env <name>/);
    expect(run.stdout()).toContain("accounts:credentials");
  });

  it("when a listing has more pages, then stderr says how to get the next one and --json keeps the API's token", async () => {
    const { connect } = routed((router) =>
      router.service(TokenService, {
        listTokens: () => ({ tokens: [{ id: tokenId, name: "ci", state: TokenState.ACTIVE }], nextPageToken: "p2" }),
      }),
    );
    const run = recordingIo();
    expect(await runCli([...admin, "token", "list"], run.io, connect)).toBe(0);
    expect(run.stdout().split("\n")[1]).toMatch(new RegExp(`^${tokenId} +ci +ACTIVE +- +- +never +-$`));
    expect(run.stderr()).toContain("--page-token p2");
    const json = recordingIo();
    expect(await runCli([...admin, "--json", "token", "list"], json.io, connect)).toBe(0);
    expect(JSON.parse(json.stdout()).nextPageToken).toBe("p2");
    expect(json.stderr()).toBe("");
  });

  it("when webhook create answers, then the flags become the endpoint, the signing secret is printed once and stderr says so", async () => {
    const requests: CreateWebhookEndpointRequest[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        createWebhookEndpoint: (request) => {
          requests.push(request);
          const { url = "", eventTypes = [], enabled = true } = request.endpoint ?? {};
          return { endpoint: { id: endpointId, url, eventTypes, enabled }, signingSecret: "whsec_c2VjcmV0" };
        },
      }),
    );
    const run = recordingIo();
    const args = ["webhook", "create", "--url", "https://hooks.example/rk", "--event", "account.failed"];
    expect(await runCli([...admin, ...args, "--event", "token.created", "--disabled"], run.io, connect)).toBe(0);
    expect(requests[0]?.endpoint).toMatchObject({
      url: "https://hooks.example/rk",
      eventTypes: ["account.failed", "token.created"],
      enabled: false,
    });
    expect(run.stdout()).toMatch(/^signing secret +whsec_c2VjcmV0$/m);
    expect(run.stdout()).toMatch(/^event types +account\.failed token\.created$/m);
    expect(run.stdout()).toMatch(/^enabled +no$/m);
    expect(run.stderr()).toContain("shown this once");

    // Without --disabled, `enabled` is left unset: the API's default (enabled) applies.
    const json = recordingIo();
    expect(
      await runCli([...admin, "--json", "webhook", "create", "--url", "https://h.example"], json.io, connect),
    ).toBe(0);
    expect(requests[1]?.endpoint?.enabled).toBeUndefined();
    expect(requests[1]?.endpoint?.eventTypes).toEqual([]);
    expect(JSON.parse(json.stdout())).toEqual({
      endpoint: { id: endpointId, url: "https://h.example", enabled: true },
      signingSecret: "whsec_c2VjcmV0",
    });
  });

  it("when webhook update is given flags, then update_mask names exactly those fields; none, or --enable with --disable, is exit 2", async () => {
    const requests: UpdateWebhookEndpointRequest[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        updateWebhookEndpoint: (request) => {
          requests.push(request);
          return { endpoint: { id: endpointId, enabled: request.endpoint?.enabled } };
        },
      }),
    );
    const cases: [string[], string[], Partial<UpdateWebhookEndpointRequest["endpoint"]>][] = [
      [["--disable"], ["enabled"], { enabled: false }],
      [["--enable", "--description", ""], ["enabled", "description"], { enabled: true, description: "" }],
      [["--url", "https://new.example", "--event", "a.b", "--event", "c.d"], ["url", "event_types"], {}],
      [["--all-events"], ["event_types"], { eventTypes: [] }],
    ];
    for (const [flags, paths, endpoint] of cases) {
      const run = recordingIo();
      expect(
        await runCli([...admin, "webhook", "update", endpointId, ...flags], run.io, connect),
        flags.join(" "),
      ).toBe(0);
      const request = requests.at(-1);
      expect(request?.updateMask?.paths, flags.join(" ")).toEqual(paths);
      expect(request?.endpoint, flags.join(" ")).toMatchObject({ id: endpointId, ...endpoint });
    }
    expect(requests[2]?.endpoint).toMatchObject({ url: "https://new.example", eventTypes: ["a.b", "c.d"] });

    const refused: [string[], RegExp][] = [
      [[], /nothing to change: give --url/],
      [["--enable", "--disable"], /--enable and --disable: give one/],
      [["--event", "a.b", "--all-events"], /--event and --all-events: give one/],
    ];
    for (const [flags, said] of refused) {
      const run = recordingIo();
      expect(await runCli([...admin, "webhook", "update", endpointId, ...flags], run.io, connect)).toBe(2);
      expect(run.stderr()).toMatch(said);
      expect(run.stderr()).toContain("(see roomkey webhook update --help)");
    }
    expect(requests).toHaveLength(cases.length);
  });

  it("when webhook rotate-secret is given --overlap, then it is sent as a duration, 0 included, and the new secret is printed once", async () => {
    const requests: RotateWebhookEndpointSecretRequest[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        rotateWebhookEndpointSecret: (request) => {
          requests.push(request);
          return { endpoint: { id: request.id, enabled: true }, signingSecret: "whsec_bmV3" };
        },
      }),
    );
    for (const overlap of [["--overlap", "1h30m"], ["--overlap", "0"], []]) {
      const run = recordingIo();
      expect(await runCli([...admin, "webhook", "rotate-secret", endpointId, ...overlap], run.io, connect)).toBe(0);
      expect(run.stdout()).toMatch(/^signing secret +whsec_bmV3$/m);
      expect(run.stderr()).toContain("shown this once");
    }
    expect(requests.map((r) => r.overlap?.seconds)).toEqual([5_400n, 0n, undefined]);
    const bad = recordingIo();
    expect(await runCli([...admin, "webhook", "rotate-secret", endpointId, "--overlap", "1y"], bad.io, connect)).toBe(
      2,
    );
    expect(bad.stderr()).toMatch(/'--overlap <duration>' argument '1y' is invalid/);
  });

  it("when webhook deliveries lists an endpoint's deliveries, then each is one row, and exactly one of --endpoint and --event is required", async () => {
    const requests: ListWebhookDeliveriesRequest[] = [];
    const { connect } = routed((router) =>
      router.service(EnvironmentService, {
        listWebhookDeliveries: (request) => {
          requests.push(request);
          return {
            deliveries: [
              {
                id: "whd_1",
                eventId,
                eventType: "token.created",
                endpointId,
                status: WebhookDeliveryStatus.FAILED,
                attempts: 3,
                lastError: "no answer within 15000 ms",
                lastLatencyMs: 15_000,
                lastAttemptTime: { seconds: 1_795_826_576n, nanos: 0 },
              },
              { id: "whd_2", eventId, eventType: "token.created", endpointId, status: WebhookDeliveryStatus.PENDING },
            ],
            nextPageToken: "p2",
          };
        },
      }),
    );
    const run = recordingIo();
    const args = ["webhook", "deliveries", "--endpoint", endpointId, "--status", "failed"];
    expect(await runCli([...admin, ...args], run.io, connect)).toBe(0);
    expect(requests[0]).toMatchObject({ endpointId, eventId: "", status: WebhookDeliveryStatus.FAILED });
    const lines = run.stdout().trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +EVENT +TYPE +ENDPOINT +STATUS +ATTEMPTS +CODE +ERROR +LATENCY +LAST ATTEMPT$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^whd_1 +${eventId} +token\\.created +${endpointId} +FAILED +3 +- +no answer within 15000 ms +15000ms +2026-11-28T00:42:56Z$`,
      ),
    );
    expect(lines[2]).toMatch(new RegExp(`^whd_2 +${eventId} +token\\.created +${endpointId} +PENDING +0 +- +- +- +-$`));
    expect(run.stderr()).toContain("--page-token p2");

    for (const flags of [[], ["--endpoint", endpointId, "--event", eventId]]) {
      const refused = recordingIo();
      expect(await runCli([...admin, "webhook", "deliveries", ...flags], refused.io, connect)).toBe(2);
      expect(refused.stderr()).toContain("give exactly one of --endpoint and --event");
    }
    expect(requests).toHaveLength(1);
  });
});
