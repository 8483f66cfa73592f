import { Command, CommanderError } from "commander";
import { type Cli, type Connect, createCli, type Io } from "./cli.js";
import { accountCommands } from "./commands/account.js";
import { auditCommands } from "./commands/audit.js";
import { connectSessionCommands } from "./commands/connect-session.js";
import { envCommands } from "./commands/env.js";
import { integrationCommands } from "./commands/integration.js";
import { tokenCommands } from "./commands/token.js";
import { webhookCommands } from "./commands/webhook.js";
import { ExitCode } from "./errors.js";

const moreHelp = `
Every command acts on one environment, named with --env (-e) or
ROOMKEY_ENVIRONMENT; there is no default, so that a command meant for one
environment never lands in another. The token defaults to ./.data/admin-key,
the local admin key scripts/start writes.

Exit codes: 0 done; 1 roomkey refused the call or could not be reached;
2 usage (a wrong flag or argument, an unreadable file, no environment or
token); 3 the answer is no (token verify of an invalid token, account
connect --wait that did not end ACTIVE).

Examples:
  roomkey -e staging token create --name ci --scope tokens:read --ttl 30d
  roomkey -e staging integration put acme.yaml
  roomkey -e staging account watch --json`;

/**
 * The `roomkey` command tree. Settings set here before the subcommands are
 * made (output, help, exitOverride) are inherited by every subcommand.
 */
export function createProgram(cli: Cli, onAction: (command: Command) => void = () => undefined): Command {
  const program = new Command("roomkey")
    .description(
      "The admin CLI of roomkey: environments, API tokens, integrations, webhook endpoints and integrated accounts.",
    )
    .option(
      "--addr <addr>",
      "roomkey's gRPC address: host:port, http://host:port or https://host[:port] (ROOMKEY_ADDR; default localhost:50051)",
    )
    .option("-e, --env <name>", "the environment to act on (ROOMKEY_ENVIRONMENT; required)")
    .option("--token <secret>", "the admin key or an API token (ROOMKEY_TOKEN; default ./.data/admin-key)")
    .option("--json", "print the API's responses as JSON, with the API's field names")
    .configureOutput({ writeOut: (text) => cli.io.stdout(text), writeErr: (text) => cli.io.stderr(text) })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError("(add --help for usage)")
    .exitOverride()
    .addHelpText("after", moreHelp)
    .hook("preAction", (_program, command) => onAction(command));
  envCommands(program, cli);
  tokenCommands(program, cli);
  accountCommands(program, cli);
  connectSessionCommands(program, cli);
  integrationCommands(program, cli);
  webhookCommands(program, cli);
  auditCommands(program, cli);
  return program;
}

/** Runs one command line (without `node` and the script) and returns its exit code. */
export async function runCli(argv: string[], io: Io, connect?: Connect): Promise<number> {
  const cli = createCli(io, connect);
  let running: Command | undefined;
  const program = createProgram(cli, (command) => {
    running = command;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return cli.exitCode;
  } catch (error) {
    // Commander has printed its own message (or the help) already.
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return cli.fail(error, running);
  }
}
