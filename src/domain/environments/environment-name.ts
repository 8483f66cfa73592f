import { RoomkeyError } from "../errors.js";

/** MongoDB's own database names: an environment may never map onto them. */
const reserved = new Set(["admin", "local", "config"]);

const pattern = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$/;

/**
 * An environment name that passed `parseEnvironmentName`, the only function
 * that returns one. Whatever builds a database name or a queue name takes
 * this type, so an unchecked string cannot reach a database or a Redis key:
 * passing one is a compile error.
 */
export type EnvironmentName = string & { readonly __environmentName: unique symbol };

/** The metadata header that names the environment of a call. */
export const environmentHeader = "roomkey-environment";

/**
 * Checks an environment name before it reaches any database or Redis key.
 * Only `^[a-z][a-z0-9-]{0,22}[a-z0-9]$` minus the reserved names passes, so
 * look-alikes, separators, control and invisible characters never do.
 */
export function parseEnvironmentName(raw: string, source = environmentHeader): EnvironmentName {
  const problem = describeProblem(raw);
  if (problem !== undefined) throw invalidEnvironment(problem, source);
  return raw as EnvironmentName;
}

/** INVALID_ARGUMENT ENVIRONMENT_INVALID, naming where the environment came from. */
export function invalidEnvironment(problem: string, source = environmentHeader): RoomkeyError {
  return new RoomkeyError("invalid_argument", "ENVIRONMENT_INVALID", `${source}: ${problem}`, { field: source }, [
    { field: source, description: problem },
  ]);
}

/** Whether a name passes `parseEnvironmentName`. */
export function isEnvironmentName(raw: string): raw is EnvironmentName {
  return describeProblem(raw) === undefined;
}

function describeProblem(raw: string): string | undefined {
  if (raw.length === 0) return "is required";
  if (reserved.has(raw.toLowerCase())) return `"${raw}" is reserved`;
  if (raw.length > 24) return "must be at most 24 characters";
  if (!pattern.test(raw)) {
    return "must be 2-24 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'";
  }
  return undefined;
}
