import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import type { Config } from "../../src/config.js";

const root = resolve(import.meta.dirname, "../..");
const live = new Set<ChildProcess>();
// A test that fails half-way must not leave a roomkey running on the machine.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Kills (SIGKILL) every roomkey this process spawned that is still running, and waits for them to go. */
export async function killSpawned(): Promise<void> {
  await Promise.all(
    [...live].map((child) => {
      const gone = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      return gone;
    }),
  );
}

/** A roomkey child process and the JSON log lines it wrote. */
export interface RoomkeyProcess {
  child: ChildProcess;
  lines: { msg?: string; [key: string]: unknown }[];
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  logged(msg: string): boolean;
  /** What it wrote to stderr so far (the first 64 KiB). */
  stderr(): string;
}

/**
 * roomkey as a real child process, with its JSON log lines collected: from
 * source, or `compiled` (dist/, as production runs it; `npm run build` first).
 */
export function spawnRoomkey(
  config: Config,
  role: string,
  options: { compiled?: boolean; nodeArgs?: string[] } = {},
): RoomkeyProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(config)) {
    if (value !== undefined) env[key] = Array.isArray(value) ? value.join(",") : String(value);
  }
  env.ROOMKEY_LOG_LEVEL = "info";
  const entry = options.compiled ? ["dist/src/main.js"] : ["--import", "tsx", "src/main.ts"];
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry, role], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const lines: RoomkeyProcess["lines"] = [];
  let buffer = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part));
      } catch {
        lines.push({ msg: part });
      }
    }
  });
  // Kept (the first 64 KiB): `--inspect` says its address there.
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 65_536) stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((done) =>
    child.once("exit", (code) => {
      live.delete(child);
      done(code);
    }),
  );
  return { child, lines, exited, logged: (msg: string) => lines.some((l) => l.msg === msg), stderr: () => stderr };
}
