import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { builtBefore } from "./build.js";

/** The CLI tests' shared parts: the built `roomkey` bin, run as a child process, and readers of what it prints. */
const root = resolve(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin?: Record<string, string> };
export const cliBin = join(root, pkg.bin?.roomkey ?? "the package has no roomkey bin");

/** Builds `dist/` when the CLI or what it imports changed since the last build. */
export async function buildCliIfStale(): Promise<void> {
  if (
    builtBefore(
      cliBin,
      ["src/cli", "src/client", "src/gen/roomkey"].map((dir) => join(root, dir)),
    )
  ) {
    await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, timeout: 120_000 });
  }
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to its end against `server` with its admin key, and none of the user's own ROOMKEY_* variables. */
export function runCli(server: { grpcAddress: string; adminKey: string }, args: string[]): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("ROOMKEY_")) env[key] = value;
  env.ROOMKEY_ADDR = server.grpcAddress;
  env.ROOMKEY_TOKEN = server.adminKey;
  return new Promise((done) => {
    const child = spawn(process.execPath, [cliBin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** Runs the CLI and fails the test, showing what it printed, unless it exits 0. */
export async function runCliOk(server: { grpcAddress: string; adminKey: string }, args: string[]): Promise<CliRun> {
  const run = await runCli(server, args);
  if (run.code !== 0) throw new Error(`roomkey ${args.join(" ")} exited ${run.code}:\n${run.stdout}${run.stderr}`);
  return run;
}

/** The value of one `label  value` line of a fields view. */
export function fieldOf(stdout: string, label: string): string | undefined {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped} {2,}(.*)$`, "m").exec(stdout)?.[1];
}

/** The rows of a table under its header, cut where two or more spaces part its columns (no cell here holds two). */
export function rowsOf(stdout: string): string[][] {
  return stdout
    .trimEnd()
    .split("\n")
    .slice(1)
    .map((row) => row.split(/ {2,}/));
}
