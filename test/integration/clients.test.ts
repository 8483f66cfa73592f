import { execFile, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { builtBefore } from "../helpers/build.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

/**
 * Issue 10, point 5: one scenario program per shipped client (Go, Python,
 * TypeScript) and curl, each using only its client and the README's
 * instructions, against a real roomkey on real Redis and FerretDB. Every
 * program checks what it prints and exits non-zero on the first surprise.
 */
const root = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
const goodKey = "sk_scenario_good_0123456789";

let server: TestServer;
let provider: ApiKeyProvider;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "roomkey-clients-"));
  provider = await startApiKeyProvider();
  provider.allow(goodKey, { id: "remote-42", name: "Acme Corp" });
  server = await startTestServer();
  // Compiled once here, so a cold Go cache costs the hook, not the test.
  await run("go", ["build", "-o", join(work, "go-scenario"), "./examples/scenario"], {
    cwd: join(root, "clients/go"),
    timeout: 280_000,
  });
  // What `pip install googleapis-common-protos` gives a Python user (no package index here): google.rpc.
  mkdirSync(join(work, "python-deps"));
  const rpc = ["google/rpc/status.proto", "google/rpc/error_details.proto"];
  await run("protoc", ["-I", "proto-deps", `--python_out=${join(work, "python-deps")}`, ...rpc], { cwd: root });
  // The Python client installed as a user installs it: pip, from clients/python, into a virtualenv that
  // takes grpcio and protobuf from the system (pip cannot fetch them here).
  // From a copy, so that pip's build/ and egg-info stay out of the repository.
  cpSync(join(root, "clients/python"), join(work, "python-src"), {
    recursive: true,
    filter: (path) => !/(__pycache__|\.egg-info|\/build)$/.test(path),
  });
  await run("/usr/bin/python3", ["-m", "venv", "--system-site-packages", join(work, "venv")]);
  await run(
    join(work, "venv/bin/pip"),
    ["install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", join(work, "python-src")],
    { cwd: work, env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1" }, timeout: 120_000 },
  );
  // The TypeScript scenario imports the package's `roomkey/client` entry, which is the build in dist/.
  if (builtBefore(join(root, "dist/src/client/index.js"), [join(root, "src/client"), join(root, "src/gen/roomkey")])) {
    await run("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, timeout: 120_000 });
  }
}, 300_000);

afterAll(async () => {
  await server?.stop();
  await provider?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs a scenario program to its end; resolves with what it printed, rejects with it on a non-zero exit. */
function scenario(command: string, args: string[], options: { cwd: string; env?: Record<string, string> }) {
  return new Promise<string>((done, failed) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: {
        ...process.env,
        ROOMKEY_ADDR: server.grpcAddress,
        ROOMKEY_ADMIN_KEY: server.adminKey,
        ROOMKEY_HTTP_URL: `http://127.0.0.1:${server.app.httpPort}`,
        SCENARIO_PROVIDER_URL: provider.url,
        SCENARIO_GOOD_KEY: goodKey,
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      console.log(`${[command, ...args].join(" ")} (exit ${code}):\n${out}`);
      if (code === 0) done(out);
      else failed(new Error(`${command} exited ${code}:\n${out}`));
    });
  });
}

function expectTheStory(out: string, language: string) {
  expect(out).toMatch(/staging token in staging: OK/);
  expect(out).toMatch(/staging token in development: \S+ TOKEN_WRONG_ENVIRONMENT \(token_environment=staging\)/);
  expect(out).toMatch(/staging token in production: \S+ TOKEN_WRONG_ENVIRONMENT \(token_environment=staging\)/);
  expect(out).toContain("per-call environment: TOKEN_WRONG_ENVIRONMENT (requested_environment=production)");
  expect(out).toMatch(/account acc_\w+ in development: (ACCOUNT_STATUS_)?ACTIVE on WatchAccounts \(remote Acme Corp\)/);
  expect(out).toMatch(/account in staging: \S+ ACCOUNT_NOT_FOUND/);
  expect(out).toMatch(/account in production: \S+ ACCOUNT_NOT_FOUND/);
  expect(out).toMatch(/bad key: (ACCOUNT_STATUS_)?FAILED: .*The API key is not valid/);
  expect(out).toMatch(/invalid environment: \S+ ENVIRONMENT_INVALID, field "roomkey-environment": /);
  expect(out).toContain(`${language} scenario: all checks passed`);
}

describe("the shipped clients, each in its own language, against a real roomkey", () => {
  it("when the Go scenario runs with clients/go, then every check holds", async () => {
    const out = await scenario(join(work, "go-scenario"), [], {
      cwd: join(root, "clients/go"),
      env: { SCENARIO_NAME: "go-scenario" },
    });
    expectTheStory(out, "go");
  }, 120_000);

  it("when the Go client's unit tests run, then they pass", async () => {
    const { stdout } = await run("go", ["test", "./roomkey/"], { cwd: join(root, "clients/go"), timeout: 110_000 });
    expect(stdout).toMatch(/^ok/m);
  }, 120_000);

  it("when the Python scenario runs with roomkey-client installed by pip, then every check holds", async () => {
    // From the work folder, so that `import roomkey` finds the installed package and not clients/python.
    const out = await scenario(join(work, "venv/bin/python"), [join(root, "clients/python/examples/scenario.py")], {
      cwd: work,
      env: { SCENARIO_NAME: "python-scenario", PYTHONPATH: join(work, "python-deps"), PYTHONDONTWRITEBYTECODE: "1" },
    });
    expect(out).not.toContain("Traceback");
    expectTheStory(out, "python");
    const { stdout } = await run(join(work, "venv/bin/python"), ["-c", "import roomkey; print(roomkey.__file__)"], {
      cwd: work,
      env: { ...process.env, PYTHONPATH: join(work, "python-deps") },
    });
    expect(stdout).toContain(join(work, "venv"));
  }, 120_000);

  it("when the Python client's unit tests run, then they pass", async () => {
    const { stderr } = await run("/usr/bin/python3", ["-m", "unittest", "discover", "-s", "tests"], {
      cwd: join(root, "clients/python"),
      env: {
        ...process.env,
        PYTHONPATH: [join(root, "clients/python"), join(work, "python-deps")].join(":"),
        PYTHONDONTWRITEBYTECODE: "1",
      },
    });
    expect(stderr).toMatch(/^OK$/m);
  }, 60_000);

  it("when the TypeScript scenario runs with the package's roomkey/client entry, then every check holds", async () => {
    const out = await scenario(process.execPath, ["--import", "tsx", "clients/node/examples/scenario.ts"], {
      cwd: root,
      env: { SCENARIO_NAME: "node-scenario" },
    });
    expectTheStory(out, "node");
  }, 120_000);

  it("when the curl scenario speaks the Connect protocol with JSON, then a staging token opens staging only", async () => {
    const out = await scenario("bash", ["clients/curl/scenario.sh"], { cwd: root });
    expect(out).toMatch(/staging token in development: HTTP 403/);
    expect(out).toContain("curl scenario: all checks passed");
  }, 60_000);
});
