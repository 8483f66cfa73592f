import type { Command } from "commander";
import {
  CreateEnvironmentResponseSchema,
  DeleteEnvironmentResponseSchema,
  type Environment,
  EnvironmentService,
  GetEnvironmentResponseSchema,
  ListEnvironmentsResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { parseDuration, parsePageSize } from "../flags.js";
import { duration, fields, table, time, yesNo } from "../output.js";
import { printNextPage } from "./paging.js";

function environmentFields(environment: Environment | undefined): string {
  const e = environment;
  const settings = e?.settings;
  return fields([
    ["name", e?.name ?? ""],
    ["display name", e?.displayName ?? ""],
    ["description", e?.description ?? ""],
    ["built-in", yesNo(e?.builtIn ?? false)],
    ["default token lifetime", duration(settings?.defaultTokenLifetime) || "none (tokens do not expire)"],
    ["oauth refresh margin", duration(settings?.oauthRefreshMargin)],
    ["refresh token keepalive", duration(settings?.refreshTokenKeepalive)],
    ["token retention", duration(settings?.tokenRetention)],
    ["audit retention", duration(settings?.auditRetention)],
    ["created", time(e?.createTime)],
    ["updated", time(e?.updateTime)],
  ]);
}

interface CreateFlags {
  displayName?: string;
  description?: string;
  defaultTokenLifetime?: { seconds: bigint };
  oauthRefreshMargin?: { seconds: bigint };
  refreshTokenKeepalive?: { seconds: bigint };
  tokenRetention?: { seconds: bigint };
  auditRetention?: { seconds: bigint };
}

/** `roomkey env …`: EnvironmentService's environments. The environment a command names is its `roomkey-environment`. */
export function envCommands(program: Command, cli: Cli): void {
  const env = program.command("env").description("create, list, show and delete environments (admin key)");

  env
    .command("list")
    .description("list every environment, ordered by name (the call goes through --env, which must exist)")
    .option("--page-size <n>", "environments per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .action(async (flags: { pageSize?: number; pageToken?: string }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .listEnvironments({ pageSize: flags.pageSize ?? 0, pageToken: flags.pageToken ?? "" }, cli.call);
      cli.print(command, ListEnvironmentsResponseSchema, response, () =>
        table(
          ["NAME", "DISPLAY NAME", "BUILT-IN", "CREATED"],
          response.environments.map((e) => [e.name, e.displayName, yesNo(e.builtIn), time(e.createTime)]),
        ),
      );
      printNextPage(cli, command, response.nextPageToken);
    });

  env
    .command("get")
    .description("show an environment and its settings")
    .argument("[name]", "the environment (default: --env)")
    .action(async (name: string | undefined, _flags: object, command: Command) => {
      const response = await cli.client(command, EnvironmentService, name).getEnvironment({}, cli.call);
      cli.print(command, GetEnvironmentResponseSchema, response, () => environmentFields(response.environment));
    });

  env
    .command("create")
    .description("create an environment: its database, encryption key and queues")
    .argument("<name>", "2-24 of a-z, 0-9 and '-', starting with a letter")
    .option("--display-name <text>", "a name for dashboards")
    .option("--description <text>", "free text")
    .option(
      "--default-token-lifetime <duration>",
      "lifetime of tokens created without --ttl, such as 90d",
      parseDuration,
    )
    .option("--oauth-refresh-margin <duration>", "refresh OAuth access tokens this long before expiry", parseDuration)
    .option("--refresh-token-keepalive <duration>", "refresh idle OAuth refresh tokens after this long", parseDuration)
    .option("--token-retention <duration>", "keep revoked and expired tokens listable this long", parseDuration)
    .option("--audit-retention <duration>", "keep audit events this long, 1d to 10 years (default 90d)", parseDuration)
    .addHelpText("after", "\nExample:\n  roomkey env create qa --display-name QA --default-token-lifetime 90d")
    .action(async (name: string, flags: CreateFlags, command: Command) => {
      const response = await cli.client(command, EnvironmentService, name).createEnvironment(
        {
          displayName: flags.displayName ?? "",
          description: flags.description ?? "",
          settings: {
            defaultTokenLifetime: flags.defaultTokenLifetime,
            oauthRefreshMargin: flags.oauthRefreshMargin,
            refreshTokenKeepalive: flags.refreshTokenKeepalive,
            tokenRetention: flags.tokenRetention,
            auditRetention: flags.auditRetention,
          },
        },
        cli.call,
      );
      cli.print(command, CreateEnvironmentResponseSchema, response, () => environmentFields(response.environment));
    });

  env
    .command("delete")
    .description("delete an environment: drops its database, queues and encryption key")
    .argument("<name>", "the environment, named again on purpose (not taken from --env)")
    .option("--force", "delete even while accounts are active; their credentials are destroyed with it")
    .action(async (name: string, flags: { force?: boolean }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService, name)
        .deleteEnvironment({ force: flags.force === true }, cli.call);
      cli.print(command, DeleteEnvironmentResponseSchema, response, () => `deleted environment ${name}`);
    });
}
