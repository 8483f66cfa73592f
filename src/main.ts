/**
 * The process entry: `node dist/src/main.js [all|api|worker]`. Parses the role
 * and the configuration, starts roomkey (src/app/roomkey.ts composes it) and
 * shuts it down within a bounded time on SIGTERM or SIGINT.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Role, type Roomkey, startRoomkey } from "./app/roomkey.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";

export { type Role, type Roomkey, type RoomkeySeams, startRoomkey } from "./app/roomkey.js";

function parseRole(argument: string | undefined): Role {
  if (argument === undefined) return "all";
  if (argument === "all" || argument === "api" || argument === "worker") return argument;
  throw new ConfigError(`unknown role "${argument}": use all, api or worker`);
}

/** Parse, start, and shut down on SIGTERM/SIGINT within a bounded time. */
export async function run(role: string | undefined = process.argv[2]): Promise<void> {
  let config: Config;
  let parsed: Role;
  try {
    parsed = parseRole(role);
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`roomkey: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.ROOMKEY_LOG_LEVEL);
  let app: Roomkey | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "shutting down");
    if (!app) process.exit(1);
    setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, config.ROOMKEY_SHUTDOWN_TIMEOUT_MS + 2_000).unref();
    app.shutdown().then(
      (clean) => process.exit(clean ? 0 : 1),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  app = await startRoomkey(config, parsed, logger);
}

/** Runs `run` when this file is the process entry, reporting a failed start on stderr with exit code 1. */
export function runAsEntry(url: string, role?: string): void {
  const entry = process.argv[1];
  if (entry === undefined || realpathSync(entry) !== fileURLToPath(url)) return;
  run(role).catch((error: unknown) => {
    process.stderr.write(`roomkey: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

runAsEntry(import.meta.url);
