import { resolve } from "node:path";
import type { Command } from "commander";
import {
  AuthTypeSchema,
  ClientAuthMethodSchema,
  CredentialPlacementSchema,
  DeleteIntegrationResponseSchema,
  EnvironmentService,
  GetIntegrationResponseSchema,
  type Integration,
  ListIntegrationsResponseSchema,
  PutIntegrationResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { parsePageSize } from "../flags.js";
import { integrationFromText } from "../integration-file.js";
import { enumName, fields, pairs, table, time, yesNo } from "../output.js";
import { printNextPage } from "./paging.js";
import { promotionCommands } from "./promotion.js";

const example = `
The file is the Integration message in its JSON form, in YAML or JSON (.json):

  name: acme
  displayName: Acme CRM
  authType: AUTH_TYPE_API_KEY          # or AUTH_TYPE_BASIC, AUTH_TYPE_OAUTH2
  credentialCheck:
    url: https://api.acme.example/me
    placement: CREDENTIAL_PLACEMENT_BEARER
    accountIdPath: data.id
    accountNamePath: data.name
  # oauth2: {authorizationUrl, tokenUrl, clientId, clientSecret, scopes, pkce}

The client secret is stored encrypted and never shown again.`;

function integrationFields(integration: Integration | undefined): string {
  const i = integration;
  const check = i?.credentialCheck;
  const rows: [string, string][] = [
    ["name", i?.name ?? ""],
    ["display name", i?.displayName ?? ""],
    ["auth type", enumName(AuthTypeSchema, i?.authType ?? 0)],
    ["check url", check?.url ?? ""],
    ["check method", check?.method || "GET"],
    ["placement", enumName(CredentialPlacementSchema, check?.placement ?? 0) || "BEARER"],
    ["parameter name", check?.parameterName ?? ""],
    ["account id path", check?.accountIdPath ?? ""],
    ["account name path", check?.accountNamePath ?? ""],
  ];
  const oauth2 = i?.oauth2;
  if (oauth2) {
    rows.push(
      ["authorization url", oauth2.authorizationUrl],
      ["token url", oauth2.tokenUrl],
      ["client id", oauth2.clientId],
      ["client secret", oauth2.clientSecretSet ? "set (never shown)" : "not set"],
      ["scopes", oauth2.scopes.join(" ")],
      ["pkce", yesNo(oauth2.pkce)],
      ["client auth method", enumName(ClientAuthMethodSchema, oauth2.clientAuthMethod) || "CLIENT_SECRET_BASIC"],
      ["authorization params", pairs(oauth2.authorizationParams)],
    );
  }
  rows.push(["created", time(i?.createTime)], ["updated", time(i?.updateTime)]);
  return fields(rows);
}

/** Reads the file `put` was given, or standard input for `-`. */
async function readIntegration(cli: Cli, file: string): Promise<Integration> {
  if (file === "-") return integrationFromText(await cli.io.stdin(), "standard input");
  let text: string;
  try {
    text = cli.io.readFile(resolve(cli.io.cwd, file));
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return integrationFromText(text, file);
}

/** `roomkey integration …`: the integrations of the environment of --env (EnvironmentService). */
export function integrationCommands(program: Command, cli: Cli): void {
  const integration = program
    .command("integration")
    .description("configure the environment's integrations (providers such as HubSpot)");

  integration
    .command("put")
    .description("create or replace an integration from a YAML or JSON file")
    .argument("<file>", "the integration, YAML or JSON (.json); '-' reads YAML or JSON from standard input")
    .addHelpText("after", example)
    .action(async (file: string, _flags: object, command: Command) => {
      const given = await readIntegration(cli, file);
      const response = await cli.client(command, EnvironmentService).putIntegration({ integration: given }, cli.call);
      cli.print(command, PutIntegrationResponseSchema, response, () =>
        [integrationFields(response.integration), response.created ? "(created)" : "(replaced)"].join("\n"),
      );
    });

  integration
    .command("get")
    .description("show an integration (never its client secret)")
    .argument("<name>", "the integration's name")
    .action(async (name: string, _flags: object, command: Command) => {
      const response = await cli.client(command, EnvironmentService).getIntegration({ name }, cli.call);
      cli.print(command, GetIntegrationResponseSchema, response, () => integrationFields(response.integration));
    });

  integration
    .command("list")
    .description("list the environment's integrations, ordered by name")
    .option("--page-size <n>", "integrations per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .action(async (flags: { pageSize?: number; pageToken?: string }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .listIntegrations({ pageSize: flags.pageSize ?? 0, pageToken: flags.pageToken ?? "" }, cli.call);
      cli.print(command, ListIntegrationsResponseSchema, response, () =>
        table(
          ["NAME", "AUTH TYPE", "DISPLAY NAME", "CHECK URL", "UPDATED"],
          response.integrations.map((i) => [
            i.name,
            enumName(AuthTypeSchema, i.authType),
            i.displayName,
            i.credentialCheck?.url ?? "",
            time(i.updateTime),
          ]),
        ),
      );
      printNextPage(cli, command, response.nextPageToken);
    });

  integration
    .command("delete")
    .description("delete an integration")
    .argument("<name>", "the integration's name")
    .option("--force", "delete even while accounts of the integration are active")
    .action(async (name: string, flags: { force?: boolean }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .deleteIntegration({ name, force: flags.force === true }, cli.call);
      cli.print(command, DeleteIntegrationResponseSchema, response, () => `deleted integration ${name}`);
    });

  promotionCommands(integration, cli);
}
