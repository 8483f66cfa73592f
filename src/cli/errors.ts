import { Code } from "../client/index.js";

/**
 * The CLI's exit codes, small and documented (docs/cli.md) so that scripts
 * can tell "roomkey said no" from "I typed it wrong" from "the answer is no".
 */
export const ExitCode = {
  ok: 0,
  /** roomkey refused the call or could not be reached: a gRPC error. */
  api: 1,
  /** The command line was wrong: a bad flag or argument, an unreadable file, no environment or token. */
  usage: 2,
  /** The call worked and the answer is no: `token verify` of an invalid token, `account connect --wait` that did not end ACTIVE. */
  negative: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A mistake on the command line, said in terms of the flag or argument the user typed. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A gRPC status code as gRPC spells it (`PERMISSION_DENIED`), not connect-es's `PermissionDenied`. */
export function codeName(code: Code): string {
  const name = Code[code];
  if (name === undefined) return String(code);
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
