import { type ChildProcessByStdio, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { builtBefore } from "../helpers/build.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { eventually, startTestServer, type TestServer } from "../helpers/server.js";

/**
 * Issue 12: the admin CLI, built (`dist/`) and run as the package's `bin`
 * through node, as a child process against a real roomkey on real Redis and
 * FerretDB. Each test makes its own environment with the CLI itself.
 */
const root = resolve(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin?: Record<string, string> };
const bin = join(root, pkg.bin?.roomkey ?? "the package has no roomkey bin");
const goodKey = "sk_cli_good_0123456789";

let server: TestServer;
let provider: ApiKeyProvider;
let redis: Redis;
let work: string;
const watches = new Set<ReturnType<typeof spawn>>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "roomkey-cli-"));
  provider = await startApiKeyProvider();
  provider.allow(goodKey, { id: "remote-7", name: "Acme Corp" });
  server = await startTestServer();
  redis = new Redis(server.config.REDIS_URL);
  if (
    builtBefore(
      bin,
      ["src/cli", "src/client", "src/gen/roomkey"].map((dir) => join(root, dir)),
    )
  ) {
    await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, timeout: 120_000 });
  }
}, 180_000);

afterAll(async () => {
  for (const child of watches) child.kill("SIGKILL");
  redis?.disconnect();
  await server?.stop();
  await provider?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** The CLI's environment variables besides ROOMKEY_ADDR (the user's own ROOMKEY_* never leak in). */
  env?: Record<string, string>;
  /** The admin key in ROOMKEY_TOKEN unless false (then the CLI finds its token itself). */
  adminToken?: boolean;
  cwd?: string;
  input?: string;
}

function cliEnv(options: RunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("ROOMKEY_")) env[key] = value;
  env.ROOMKEY_ADDR = server.grpcAddress;
  if (options.adminToken !== false) env.ROOMKEY_TOKEN = server.adminKey;
  return { ...env, ...options.env };
}

/** What a child process has written so far, on each stream. */
function captured(child: ChildProcessByStdio<Writable | null, Readable, Readable>) {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return { stdout: () => stdout, stderr: () => stderr };
}

/** Runs the built CLI to its end. */
function roomkey(args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? work,
      env: cliEnv(options),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const output = captured(child);
    child.stdin.end(options.input ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout: output.stdout(), stderr: output.stderr() });
    });
  });
}

/** Runs the CLI and fails the test, showing what it printed, unless it exits 0. */
async function ok(args: string[], options: RunOptions = {}): Promise<Run> {
  const run = await roomkey(args, options);
  if (run.code !== 0) throw new Error(`roomkey ${args.join(" ")} exited ${run.code}:\n${run.stdout}${run.stderr}`);
  return run;
}

/** A new environment, made with the CLI. */
async function freshEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await ok(["env", "create", name]);
  return name;
}

/** The value of one `label  value` line of a fields view. */
function field(stdout: string, label: string): string | undefined {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped} {2,}(.*)$`, "m").exec(stdout)?.[1];
}

/** An API key integration against the test provider, as a user would write it in YAML. */
function apiKeyYaml(name: string): string {
  return [
    "# written by hand, comments and all",
    `name: ${name}`,
    "displayName: Acme CRM",
    "authType: AUTH_TYPE_API_KEY",
    "credentialCheck:",
    `  url: ${provider.url}/me`,
    "  placement: CREDENTIAL_PLACEMENT_BEARER",
    "  accountIdPath: data.id",
    "  accountNamePath: data.profile.name",
    "",
  ].join("\n");
}

/** `roomkey account watch` left running: its stdout lines as they come, ended with Ctrl-C (SIGINT). */
async function startWatch(environment: string, args: string[] = []) {
  const channel = `${server.config.ROOMKEY_QUEUE_PREFIX}:{events}:accounts.${environment}`;
  const subscribers = async () => Number(((await redis.pubsub("NUMSUB", channel)) as [string, number])[1]);
  const before = await subscribers();
  const child = spawn(process.execPath, [bin, "-e", environment, "account", "watch", ...args], {
    cwd: work,
    env: cliEnv({}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  watches.add(child);
  const output = captured(child);
  const exited = new Promise<number | null>((done) => child.on("close", done));
  // The watch is live only: it must be subscribed before the change it is to print.
  await eventually(async () => (await subscribers()) > before, 10_000, "the watch subscribes");
  return {
    lines: () => output.stdout().split("\n").filter(Boolean),
    stderr: output.stderr,
    async stop() {
      child.kill("SIGINT");
      const code = await exited;
      watches.delete(child);
      return code;
    },
  };
}

describe("the roomkey CLI against a real roomkey", { timeout: 60_000 }, () => {
  it("when the package's bin is built, then it is the CLI and starts with a node shebang", () => {
    expect(pkg.bin?.roomkey).toBe("dist/src/cli/main.js");
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("when an environment is created, listed, shown and deleted, then each step shows it, and afterwards it is gone", async () => {
    const name = randomEnvironmentName();
    const created = await ok(["env", "create", name, "--display-name", "CLI test", "--token-retention", "7d"]);
    expect(field(created.stdout, "name")).toBe(name);
    expect(field(created.stdout, "token retention")).toBe("7d");

    const listed = await ok(["-e", name, "env", "list", "--page-size", "100"]);
    expect(listed.stdout.split("\n")[0]).toMatch(/^NAME +DISPLAY NAME +BUILT-IN +CREATED$/);
    expect(listed.stdout).toMatch(new RegExp(`^${name} +CLI test +no +\\d{4}-`, "m"));
    expect(listed.stdout).toMatch(/^development +.*yes/m);

    const got = await ok(["--json", "env", "get", name]);
    expect(JSON.parse(got.stdout).environment).toMatchObject({
      name,
      displayName: "CLI test",
      settings: { tokenRetention: "604800s" },
    });
    // Through ROOMKEY_ENVIRONMENT, with no name given.
    const current = await ok(["env", "get"], { env: { ROOMKEY_ENVIRONMENT: name } });
    expect(field(current.stdout, "name")).toBe(name);

    expect((await ok(["env", "delete", name])).stdout.trim()).toBe(`deleted environment ${name}`);
    const after = await ok(["-e", "development", "--json", "env", "list", "--page-size", "100"]);
    expect(JSON.parse(after.stdout).environments.map((e: { name: string }) => e.name)).not.toContain(name);
    const gone = await roomkey(["env", "get", name]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: NOT_FOUND ENVIRONMENT_NOT_FOUND: /m);
  });

  it("when a token is created, then its secret verifies, and rotate, revoke, list and get show it move through its states", async () => {
    const env = await freshEnvironment();
    const scopes = ["--scope", "tokens:read", "--scope", "tokens:verify"];
    const created = await ok(["-e", env, "token", "create", "--name", "ci", ...scopes, "--ttl", "30d"]);
    const secret = field(created.stdout, "secret") ?? "";
    const id = field(created.stdout, "id") ?? "";
    expect(secret).toMatch(new RegExp(`^rk_${env}_\\w+$`));
    expect(id).toMatch(/^tok_\w{22}$/);
    expect(created.stderr).toContain("shown this once");
    expect(field(created.stdout, "expires")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // The new token itself, as the credential of the call.
    const verified = await ok(["-e", env, "--token", secret, "token", "verify", "-"], { input: `${secret}\n` });
    expect(field(verified.stdout, "valid")).toBe("yes");
    expect(field(verified.stdout, "status")).toBe("VALID");
    expect(field(verified.stdout, "token id")).toBe(id);
    expect(field(verified.stdout, "scopes")).toBe("tokens:read tokens:verify");

    const listed = await ok(["-e", env, "--token", secret, "token", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`^${id} +ci +ACTIVE +rk_${env}_\\S+ +tokens:read tokens:verify `, "m"));
    expect(listed.stdout).not.toContain(secret);
    const got = await ok(["-e", env, "--json", "token", "get", id]);
    expect(JSON.parse(got.stdout).token).toMatchObject({ id, name: "ci", state: "TOKEN_STATE_ACTIVE" });

    const rotated = await ok(["-e", env, "--json", "token", "rotate", id, "--grace", "1h"]);
    const rotation = JSON.parse(rotated.stdout);
    expect(rotation.secret).toMatch(new RegExp(`^rk_${env}_`));
    expect(rotation.secret).not.toBe(secret);
    expect(rotation.previous).toMatchObject({ id, state: "TOKEN_STATE_ROTATED", successorId: rotation.token.id });
    expect(rotated.stderr).toContain("shown this once");
    const inGrace = await ok(["-e", env, "token", "verify", secret]);
    expect(field(inGrace.stdout, "in grace period")).toBe("yes");

    const revoked = await ok(["-e", env, "token", "revoke", rotation.token.id]);
    expect(field(revoked.stdout, "state")).toBe("REVOKED");
    const refused = await roomkey(["-e", env, "token", "verify", rotation.secret]);
    expect(refused.code).toBe(3);
    expect(field(refused.stdout, "valid")).toBe("no");
    expect(field(refused.stdout, "status")).toBe("REVOKED");

    const onlyRevoked = await ok(["-e", env, "--json", "token", "list", "--state", "revoked"]);
    expect(JSON.parse(onlyRevoked.stdout).tokens.map((t: { id: string }) => t.id)).toEqual([rotation.token.id]);
  });

  it("when integrations are put from a YAML file and a JSON file, then get and list show both and never the client secret", async () => {
    const env = await freshEnvironment();
    writeFileSync(join(work, `${env}-acme.yaml`), apiKeyYaml("acme"));
    const oauth = {
      name: "hubspot",
      auth_type: "AUTH_TYPE_OAUTH2",
      oauth2: {
        authorizationUrl: "https://app.hubspot.example/oauth/authorize",
        tokenUrl: "https://api.hubspot.example/oauth/v1/token",
        clientId: "cli-client",
        clientSecret: "shh-cli-client-secret",
        scopes: ["crm.objects.contacts.read"],
        pkce: true,
      },
      credentialCheck: { url: "https://api.hubspot.example/account-info", accountIdPath: "portalId" },
    };
    writeFileSync(join(work, `${env}-hubspot.json`), JSON.stringify(oauth, null, 2));

    const putYaml = await ok(["-e", env, "integration", "put", `${env}-acme.yaml`]);
    expect(putYaml.stdout).toMatch(/\(created\)$/m);
    expect(field(putYaml.stdout, "auth type")).toBe("API_KEY");
    const putJson = await ok(["-e", env, "--json", "integration", "put", join(work, `${env}-hubspot.json`)]);
    expect(JSON.parse(putJson.stdout)).toMatchObject({
      created: true,
      integration: { name: "hubspot", authType: "AUTH_TYPE_OAUTH2", oauth2: { clientSecretSet: true } },
    });
    expect(putJson.stdout).not.toContain("shh-cli-client-secret");
    expect((await ok(["-e", env, "integration", "put", `${env}-acme.yaml`])).stdout).toMatch(/\(replaced\)$/m);

    const got = await ok(["-e", env, "integration", "get", "hubspot"]);
    expect(field(got.stdout, "client secret")).toBe("set (never shown)");
    expect(field(got.stdout, "pkce")).toBe("yes");
    expect(got.stdout).not.toContain("shh-cli-client-secret");
    const gotJson = await ok(["-e", env, "--json", "integration", "get", "acme"]);
    expect(JSON.parse(gotJson.stdout).integration.credentialCheck).toMatchObject({
      url: `${provider.url}/me`,
      placement: "CREDENTIAL_PLACEMENT_BEARER",
      accountIdPath: "data.id",
      accountNamePath: "data.profile.name",
    });

    const listed = await ok(["-e", env, "integration", "list"]);
    const rows = listed.stdout.trimEnd().split("\n");
    expect(rows[0]).toMatch(/^NAME +AUTH TYPE +DISPLAY NAME +CHECK URL +UPDATED$/);
    expect(rows.slice(1).map((row) => row.split(/ +/).slice(0, 2))).toEqual([
      ["acme", "API_KEY"],
      ["hubspot", "OAUTH2"],
    ]);

    writeFileSync(join(work, `${env}-typo.yaml`), "name: typo\nauthTyp: AUTH_TYPE_API_KEY\n");
    const typo = await roomkey(["-e", env, "integration", "put", `${env}-typo.yaml`]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain(`${env}-typo.yaml`);
    expect(typo.stderr).toContain('"authTyp" is unknown');

    expect((await ok(["-e", env, "integration", "delete", "hubspot"])).stdout.trim()).toBe(
      "deleted integration hubspot",
    );
    const afterDelete = await ok(["-e", env, "--json", "integration", "list"]);
    expect(JSON.parse(afterDelete.stdout).integrations.map((i: { name: string }) => i.name)).toEqual(["acme"]);
  });

  it("when an account is connected with an API key, then a running watch prints its change, and list, get, credentials and delete show it", async () => {
    const env = await freshEnvironment();
    writeFileSync(join(work, `${env}-acme.yaml`), apiKeyYaml("acme"));
    await ok(["-e", env, "integration", "put", `${env}-acme.yaml`]);
    const watch = await startWatch(env, ["--integration", "acme"]);

    const args = ["-e", env, "--json", "account", "connect", "--integration", "acme", "--tenant", "tenant-42"];
    const connected = await ok([...args, "--api-key", "-", "--label", "team=billing"], { input: `${goodKey}\n` });
    const { account } = JSON.parse(connected.stdout);
    expect(account).toMatchObject({ integration: "acme", tenantId: "tenant-42", status: "ACCOUNT_STATUS_CONNECTING" });
    const id: string = account.id;

    const activeLine = new RegExp(`^\\S+Z ${id} acme +tenant-42 +CONNECTING -> ACTIVE +Acme Corp$`);
    await eventually(() => watch.lines().some((line) => activeLine.test(line)), 15_000, "the watch prints ACTIVE");
    expect(watch.lines()[0]).toMatch(/^TIME +ACCOUNT +INTEGRATION +TENANT +CHANGE +DETAIL$/);

    const listed = await ok(["-e", env, "account", "list", "--integration", "acme"]);
    expect(listed.stdout).toMatch(new RegExp(`^${id} +acme +tenant-42 +ACTIVE +Acme Corp +\\d{4}-`, "m"));
    const failedOnly = await ok(["-e", env, "--json", "account", "list", "--status", "failed"]);
    expect(JSON.parse(failedOnly.stdout).accounts ?? []).toEqual([]);

    const got = await ok(["-e", env, "account", "get", id]);
    expect(field(got.stdout, "status")).toBe("ACTIVE");
    expect(field(got.stdout, "remote id")).toBe("remote-7");
    expect(field(got.stdout, "labels")).toBe("team=billing");

    const credentials = await ok(["-e", env, "account", "credentials", id]);
    expect(field(credentials.stdout, "kind")).toBe("api key");
    expect(field(credentials.stdout, "key")).toBe(goodKey);
    const credentialsJson = await ok(["-e", env, "--json", "account", "credentials", id]);
    expect(JSON.parse(credentialsJson.stdout)).toEqual({ accountId: id, apiKey: { key: goodKey } });

    const deleted = await ok(["-e", env, "account", "delete", id]);
    expect(field(deleted.stdout, "status")).toBe("DISCONNECTED");

    expect(await watch.stop()).toBe(0);
    expect(watch.stderr()).toContain("Ctrl-C");
  });

  it("when account watch runs with --json, then each change is one JSON object on its own line", async () => {
    const env = await freshEnvironment();
    writeFileSync(join(work, `${env}-acme.yaml`), apiKeyYaml("acme"));
    await ok(["-e", env, "integration", "put", `${env}-acme.yaml`]);
    const watch = await startWatch(env, ["--json"]);
    const connected = await ok(
      ["-e", env, "account", "connect", "--integration", "acme", "--tenant", "t-json", "--api-key", goodKey, "--wait"],
      {},
    );
    const id = field(connected.stdout, "id");
    expect(field(connected.stdout, "status")).toBe("ACTIVE");
    const events = () => watch.lines().map((line) => JSON.parse(line));
    await eventually(
      () => events().some((e) => e.account?.status === "ACCOUNT_STATUS_ACTIVE"),
      15_000,
      "the watch prints ACTIVE",
    );
    // The connect itself (a new account, no previous status), then the handshake's outcome.
    expect(events().map((e) => [e.account.id, e.previousStatus, e.account.status])).toEqual([
      [id, undefined, "ACCOUNT_STATUS_CONNECTING"],
      [id, "ACCOUNT_STATUS_CONNECTING", "ACCOUNT_STATUS_ACTIVE"],
    ]);
    const active = events()[1];
    expect(active.account).toMatchObject({ tenantId: "t-json", remoteId: "remote-7", remoteName: "Acme Corp" });
    expect(active.eventTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await watch.stop()).toBe(0);
  });

  it("when account connect --wait ends FAILED, then the provider's words are printed and the exit code is 3", async () => {
    const env = await freshEnvironment();
    writeFileSync(join(work, `${env}-acme.yaml`), apiKeyYaml("acme"));
    await ok(["-e", env, "integration", "put", `${env}-acme.yaml`]);
    const args = ["account", "connect", "--integration", "acme", "--tenant", "t-1", "--api-key", "sk_wrong", "--wait"];
    const failed = await roomkey(["-e", env, ...args, "30s"]);
    expect(failed.code).toBe(3);
    expect(field(failed.stdout, "status")).toBe("FAILED");
    expect(field(failed.stdout, "status reason")).toContain("The API key is not valid");
  });

  it("when a call goes to the wrong environment or breaks a field rule, then stderr names the code, the reason and the field, with exit 1", async () => {
    const env = await freshEnvironment();
    const created = await ok(["-e", env, "--json", "token", "create", "--name", "reader", "--scope", "accounts:read"]);
    const { secret } = JSON.parse(created.stdout);

    const wrongRoom = await roomkey(["-e", "staging", "--token", secret, "account", "list"]);
    expect(wrongRoom.code).toBe(1);
    expect(wrongRoom.stderr).toMatch(/^error: PERMISSION_DENIED TOKEN_WRONG_ENVIRONMENT: /m);
    expect(wrongRoom.stderr).toMatch(new RegExp(`^ {2}token_environment: ${env}$`, "m"));
    expect(wrongRoom.stdout).toBe("");

    const badName = await roomkey(["-e", "Not_An_Environment", "token", "list"]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^error: INVALID_ARGUMENT ENVIRONMENT_INVALID: /m);
    expect(badName.stderr).toMatch(/^ {2}field roomkey-environment: /m);

    const badScope = await roomkey(["-e", env, "--json", "token", "create", "--name", "x", "--scope", "everything"]);
    expect(badScope.code).toBe(1);
    expect(JSON.parse(badScope.stderr).error).toMatchObject({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_REQUEST",
      fieldViolations: [expect.objectContaining({ field: "scopes[0]" })],
    });

    const missingScope = await roomkey(["-e", env, "token", "create", "--name", "x"]);
    expect(missingScope.code).toBe(2);
    expect(missingScope.stderr).toContain("--scope: give at least one");
    const badTtl = await roomkey([
      "-e",
      env,
      "token",
      "create",
      "--name",
      "x",
      "--scope",
      "tokens:read",
      "--ttl",
      "1y",
    ]);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toContain("option '--ttl <duration>' argument '1y' is invalid");
  });

  it("when a subcommand is asked for --help, then it prints its flags and the global ones and exits 0", async () => {
    const help = await ok(["account", "watch", "--help"]);
    expect(help.stdout).toContain("Usage: roomkey account watch [options]");
    expect(help.stdout).toMatch(/--integration <name>/);
    expect(help.stdout).toMatch(/--account <id>/);
    expect(help.stdout).toMatch(/Global Options:[\s\S]*--json/);
    const top = await ok(["--help"]);
    expect(top.stdout).toMatch(/^ {2}integration +configure/m);
    expect(top.stdout).toContain("Exit codes:");
  });

  it("when no token is given, then the CLI uses .data/admin-key in the current directory, and says so when it is refused", async () => {
    const env = await freshEnvironment();
    const local = join(work, "local");
    mkdirSync(join(local, ".data"), { recursive: true });
    writeFileSync(join(local, ".data/admin-key"), `${server.adminKey}\n`, { mode: 0o600 });
    const got = await ok(["-e", env, "env", "get"], { cwd: local, adminToken: false });
    expect(field(got.stdout, "name")).toBe(env);

    const stale = join(work, "stale");
    mkdirSync(join(stale, ".data"), { recursive: true });
    writeFileSync(join(stale, ".data/admin-key"), "not-the-admin-key-of-this-deployment\n");
    const refused = await roomkey(["-e", env, "env", "get"], { cwd: stale, adminToken: false });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: UNAUTHENTICATED /m);
    expect(refused.stderr).toContain("(the token came from .data/admin-key)");

    const empty = join(work, "empty");
    mkdirSync(empty);
    const none = await roomkey(["-e", env, "env", "get"], { cwd: empty, adminToken: false });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no token");
  });
});
