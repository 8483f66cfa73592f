import { create } from "@bufbuild/protobuf";
import { type Command, InvalidArgumentError } from "commander";
import {
  DiffIntegrationsResponseSchema,
  EnvironmentService,
  type FieldDifference,
  type IntegrationDiff,
  IntegrationDiffKind,
  IntegrationDiffKindSchema,
  type IntegrationPromotion,
  PromoteIntegrationsResponseSchema,
  PromotionAction,
  PromotionActionSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { enumName, table } from "../output.js";
import type { GlobalFlags } from "../settings.js";

/** The most integrations a diff page holds (the API's maximum): the CLI reads every page. */
const diffPageSize = 500;

const diffHelp = `
The environment of --env (or --to) is compared with --from. One row per field
that differs, ordered by integration and field; values are JSON. Client
secrets are compared by a keyed fingerprint inside roomkey and never shown:
only "(secret) different", or "(secret) set" for an integration that exists
on one side only.

With --exit-code the command exits 3 when anything differs (0 when nothing
does, 1 when roomkey refused or could not be reached), for a pull-request
check:

  roomkey integration diff --from staging --to production --exit-code`;

const promoteHelp = `
Copies integrations from --from into the environment of --env (or --to):
client secrets are resealed with the target's key, never shown. Accounts,
tokens and webhook endpoints are never copied. Each integration is written in
one step; running the same promotion again finishes an interrupted one
(UNCHANGED for what is done).

--keep names fields the target keeps, for production's own OAuth app:
  roomkey integration promote --from staging --to production --all \\
    --keep oauth2.client_id,oauth2.client_secret --dry-run

Keepable: display_name, oauth2.authorization_url, oauth2.token_url,
oauth2.client_id, oauth2.client_secret, oauth2.scopes,
oauth2.authorization_params, oauth2.issuer, oauth2.revocation_url.`;

/** For `--keep a,b --keep c`: field paths, comma-separated, the flag given once or more. */
function collectPaths(value: string, previous: string[] = []): string[] {
  const paths = value.split(",").map((p) => p.trim());
  if (paths.some((p) => p === ""))
    throw new InvalidArgumentError(
      "Use field paths separated by commas, such as oauth2.client_id,oauth2.client_secret.",
    );
  return [...previous, ...paths];
}

/** The target: `--to`, or the usual `--env`; both only when they agree. */
function target(command: Command, to: string | undefined): string | undefined {
  if (to === undefined) return undefined;
  if (to === "") throw new UsageError("--to is empty");
  const env = command.optsWithGlobals<GlobalFlags>().env;
  if (env !== undefined && env !== to) {
    throw new UsageError(`--to ${to} and --env ${env} name two environments: give one of them`);
  }
  return to;
}

/** A FieldDifference's two values as table cells: secrets only as set or different. */
function cells(field: FieldDifference, fromSet: boolean, toSet: boolean): [from: string, to: string] {
  if (!field.secret) return [field.fromValue, field.toValue];
  if (fromSet && toSet) return ["(secret) different", "(secret) different"];
  return [fromSet ? "(secret) set" : "", toSet ? "(secret) set" : ""];
}

function diffRows(diffs: IntegrationDiff[]): string[][] {
  const rows: string[][] = [];
  for (const diff of diffs) {
    const kind = enumName(IntegrationDiffKindSchema, diff.kind);
    if (diff.fields.length === 0) rows.push([diff.name, kind, "", "", ""]);
    const fromSet = diff.kind !== IntegrationDiffKind.ONLY_IN_TO;
    const toSet = diff.kind !== IntegrationDiffKind.ONLY_IN_FROM;
    for (const field of diff.fields) rows.push([diff.name, kind, field.field, ...cells(field, fromSet, toSet)]);
  }
  return rows;
}

function promotionRows(promotions: IntegrationPromotion[]): string[][] {
  const rows: string[][] = [];
  for (const p of promotions) {
    const action = enumName(PromotionActionSchema, p.action);
    if (p.changes.length === 0) rows.push([p.name, action, "", "", ""]);
    const existed = p.action !== PromotionAction.CREATE;
    for (const change of p.changes) {
      // from_value is the new value (the source's), to_value the target's before.
      const [after, before] = cells(change, true, existed);
      rows.push([p.name, action, change.field, before, after]);
    }
  }
  return rows;
}

function promotionSummary(promotions: IntegrationPromotion[], dryRun: boolean, from: string): string {
  const count = (action: PromotionAction) => promotions.filter((p) => p.action === action).length;
  const parts = [
    `${count(PromotionAction.CREATE)} ${dryRun ? "to create" : "created"}`,
    `${count(PromotionAction.UPDATE)} ${dryRun ? "to update" : "updated"}`,
    `${count(PromotionAction.UNCHANGED)} unchanged`,
  ].join(", ");
  return dryRun ? `dry run from ${from}, nothing was written: ${parts}` : `promoted from ${from}: ${parts}`;
}

/** `roomkey integration diff` and `roomkey integration promote`: integration config between two environments. */
export function promotionCommands(integration: Command, cli: Cli): void {
  integration
    .command("diff")
    .description("compare the environment's integrations with another environment's, field by field")
    .requiredOption("--from <env>", "the environment to compare from, such as staging")
    .option("--to <env>", "the environment to compare with (default: --env)")
    .option("--include-same", "also list integrations that are the same in both")
    .option("--exit-code", "exit 3 when anything differs (for pull-request checks)")
    .addHelpText("after", diffHelp)
    .action(
      async (flags: { from: string; to?: string; includeSame?: boolean; exitCode?: boolean }, command: Command) => {
        const client = cli.client(command, EnvironmentService, target(command, flags.to));
        const integrations: IntegrationDiff[] = [];
        let pageToken = "";
        do {
          const page = await client.diffIntegrations(
            { fromEnvironment: flags.from, includeSame: flags.includeSame === true, pageSize: diffPageSize, pageToken },
            cli.call,
          );
          integrations.push(...page.integrations);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        const response = create(DiffIntegrationsResponseSchema, { integrations });
        const differing = integrations.filter((i) => i.kind !== IntegrationDiffKind.SAME).length;
        cli.print(command, DiffIntegrationsResponseSchema, response, () =>
          integrations.length === 0
            ? "no differences"
            : table(["INTEGRATION", "KIND", "FIELD", "FROM", "TO"], diffRows(integrations)),
        );
        if (!cli.json(command)) cli.note(`${differing} integration(s) differ`);
        if (flags.exitCode && differing > 0) cli.answerNo();
      },
    );

  integration
    .command("promote")
    .description("copy integrations from another environment into this one (secrets resealed, never shown)")
    .argument("[names...]", "the integrations to promote, by name")
    .requiredOption("--from <env>", "the environment to copy from, such as staging")
    .option("--to <env>", "the environment to copy into (default: --env)")
    .option("--all", "promote every integration of --from")
    .option("--dry-run", "show what would change and change nothing")
    .option("--keep <fields>", "fields the target keeps, comma-separated (see below)", collectPaths)
    .addHelpText("after", promoteHelp)
    .action(
      async (
        names: string[],
        flags: { from: string; to?: string; all?: boolean; dryRun?: boolean; keep?: string[] },
        command: Command,
      ) => {
        if (names.length > 0 === (flags.all === true)) {
          throw new UsageError("name the integrations to promote, or give --all (not both)");
        }
        const response = await cli.client(command, EnvironmentService, target(command, flags.to)).promoteIntegrations(
          {
            fromEnvironment: flags.from,
            names,
            all: flags.all === true,
            dryRun: flags.dryRun === true,
            keepTargetFields: { paths: flags.keep ?? [] },
          },
          cli.call,
        );
        cli.print(command, PromoteIntegrationsResponseSchema, response, () =>
          response.promotions.length === 0
            ? "nothing to promote"
            : table(["INTEGRATION", "ACTION", "FIELD", "BEFORE", "AFTER"], promotionRows(response.promotions)),
        );
        if (!cli.json(command)) cli.note(promotionSummary(response.promotions, response.dryRun, flags.from));
      },
    );
}
