import { join } from "node:path";
import { DEFAULT_ADDR, ENV_ADDR, ENV_ENVIRONMENT, ENV_TOKEN, parseAddr } from "../client/index.js";
import { UsageError } from "./errors.js";

/** Where `scripts/start` keeps the local admin key, relative to the directory the CLI runs in. */
export const localAdminKeyFile = join(".data", "admin-key");

/** The flags every command takes (on the program, before or after the command). */
export interface GlobalFlags {
  addr?: string;
  env?: string;
  token?: string;
  json?: boolean;
}

/** Where roomkey is and who calls it, each resolved once from flag, variable or default. */
export interface Settings {
  addr: string;
  environment: string;
  token: string;
  /** Where the token came from, to say so when roomkey refuses it. */
  tokenSource: string;
}

/** What settings are read from besides the flags; the process's own in main.ts. */
export interface SettingsSource {
  env: Record<string, string | undefined>;
  cwd: string;
  /** Reads a file as UTF-8; throws as node:fs does (`code` ENOENT when it is missing). */
  readFile(path: string): string;
}

/**
 * Resolves the address, environment and token: a flag wins over its
 * variable; the address defaults to localhost:50051 and the token to the
 * local admin key in `./.data/admin-key`.
 *
 * The environment has no default, on purpose: the admin key opens every
 * environment, and commands here revoke tokens, disconnect accounts and drop
 * environments. A silent `development` would send such a command to the
 * wrong room whenever the user forgot `-e`; naming it costs one flag or one
 * `export ROOMKEY_ENVIRONMENT=…`. `environment`, when given, is the one the
 * command names itself (`roomkey env create qa`).
 */
export function resolveSettings(flags: GlobalFlags, source: SettingsSource, environment?: string): Settings {
  const addr = pick(flags.addr, "--addr", source.env[ENV_ADDR]) ?? DEFAULT_ADDR;
  try {
    parseAddr(addr);
  } catch (error) {
    const from = flags.addr !== undefined ? "--addr" : source.env[ENV_ADDR] ? ENV_ADDR : "the default address";
    throw new UsageError(`${from}: ${error instanceof Error ? error.message.replace(/^roomkey: /, "") : error}`);
  }
  const chosen = environment ?? pick(flags.env, "--env", source.env[ENV_ENVIRONMENT]);
  if (!chosen) throw new UsageError(`no environment: pass --env <name> (-e) or set ${ENV_ENVIRONMENT}`);
  return { addr, environment: chosen, ...resolveToken(flags, source) };
}

function resolveToken(flags: GlobalFlags, source: SettingsSource): { token: string; tokenSource: string } {
  const given = pick(flags.token, "--token", source.env[ENV_TOKEN]);
  if (given) return { token: given, tokenSource: flags.token !== undefined ? "--token" : ENV_TOKEN };
  const path = join(source.cwd, localAdminKeyFile);
  let key: string;
  try {
    key = source.readFile(path).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new UsageError(`cannot read the local admin key ${path}: ${(error as Error).message}`);
    }
    throw new UsageError(
      `no token: pass --token, set ${ENV_TOKEN}, or run where scripts/start wrote ${localAdminKeyFile}`,
    );
  }
  if (!key) throw new UsageError(`${path} is empty`);
  return { token: key, tokenSource: localAdminKeyFile };
}

/** A flag's value, else the variable's; an empty flag is a mistake, an empty variable counts as unset. */
function pick(flag: string | undefined, name: string, variable: string | undefined): string | undefined {
  if (flag !== undefined) {
    if (flag === "") throw new UsageError(`${name} is empty`);
    return flag;
  }
  return variable || undefined;
}
