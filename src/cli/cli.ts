import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import type { CallOptions, Client } from "@connectrpc/connect";
import type { Command } from "commander";
import { Code, createRoomkeyClient, errorOf } from "../client/index.js";
import { ExitCode, UsageError } from "./errors.js";
import { errorJson, errorText, printable } from "./output.js";
import { type GlobalFlags, resolveSettings, type Settings, type SettingsSource } from "./settings.js";

/** How long a unary call may take before the CLI gives up on it (a watch has no deadline). */
const callTimeoutMs = 30_000;

/** The process as the CLI sees it; main.ts gives the real one, unit tests a recording one. */
export interface Io extends SettingsSource {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Everything on standard input, for secrets that should not sit in the shell's history. */
  stdin(): Promise<string>;
  /** Calls `handler` on Ctrl-C (SIGINT) or SIGTERM until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
}

/** Makes a client of a service for resolved settings: `createRoomkeyClient` in main.ts. */
export type Connect = <S extends DescService>(service: S, settings: Settings) => Client<S>;

export const connectWithRoomkeyClient: Connect = (service, { addr, environment, token }) =>
  createRoomkeyClient(service, { addr, environment, token });

/** What every command needs: clients for its environment, output in the chosen format, the exit code. */
export interface Cli {
  io: Io;
  /** Options for a unary call: its deadline. */
  readonly call: CallOptions;
  /** A client of `service` for the command's environment, or for `environment` when the command names one. */
  client<S extends DescService>(command: Command, service: S, environment?: string): Client<S>;
  /** Whether `--json` was given. */
  json(command: Command): boolean;
  /** Prints a response: `toJson` of it with `--json`, else what `human` renders. */
  print<Desc extends DescMessage>(
    command: Command,
    schema: Desc,
    message: MessageShape<Desc>,
    human: () => string,
  ): void;
  /** A remark for the person at the terminal (stderr, so that stdout stays the data). */
  note(text: string): void;
  /** Sets the exit code for a command that answered but whose answer is no. */
  answerNo(): void;
  /** Prints an error as the command's outcome and returns the exit code it means. */
  fail(error: unknown, command: Command | undefined): number;
  readonly exitCode: number;
}

export function createCli(io: Io, connect: Connect = connectWithRoomkeyClient): Cli {
  let exitCode: number = ExitCode.ok;
  let settings: Settings | undefined;
  const flagsOf = (command: Command) => command.optsWithGlobals<GlobalFlags>();

  return {
    io,
    call: { timeoutMs: callTimeoutMs },
    get exitCode() {
      return exitCode;
    },
    client(command, service, environment) {
      settings = resolveSettings(flagsOf(command), io, environment);
      return connect(service, settings);
    },
    json: (command) => flagsOf(command).json === true,
    print(command, schema, message, human) {
      if (flagsOf(command).json) io.stdout(`${JSON.stringify(toJson(schema, message), null, 2)}\n`);
      else io.stdout(`${human()}\n`);
    },
    note: (text) => io.stderr(`${text}\n`),
    answerNo() {
      exitCode = ExitCode.negative;
    },
    fail(error, command) {
      if (error instanceof UsageError) {
        io.stderr(`error: ${printable(error.message)}\n`);
        if (command) io.stderr(`(see roomkey ${commandPath(command)} --help)\n`);
        return ExitCode.usage;
      }
      const rk = errorOf(error);
      if (!rk) {
        io.stderr(`error: ${error instanceof Error ? error.message : String(error)}\n`);
        return ExitCode.api;
      }
      if (command && flagsOf(command).json) {
        io.stderr(`${errorJson(rk)}\n`);
        return ExitCode.api;
      }
      io.stderr(`${errorText(rk)}\n`);
      if (rk.code === Code.Unavailable && !rk.reasonName && settings) {
        io.stderr(`  (is roomkey serving gRPC at ${settings.addr}? set --addr or ROOMKEY_ADDR)\n`);
      }
      if (rk.code === Code.Unauthenticated && settings) io.stderr(`  (the token came from ${settings.tokenSource})\n`);
      return ExitCode.api;
    },
  };
}

/** `token create` for the command `create` under `token`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
  return names.join(" ");
}
