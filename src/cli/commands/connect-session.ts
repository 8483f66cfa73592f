import type { Command } from "commander";
import {
  AccountService,
  AuthTypeSchema,
  type ConnectSession,
  ConnectSessionStatusSchema,
  CreateConnectSessionResponseSchema,
  type EndUser,
  GetConnectSessionResponseSchema,
  RevokeConnectSessionResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { collect, collectLabel, parseDuration } from "../flags.js";
import { enumName, fields, pairs, table, time, yesNo } from "../output.js";

const shownOnce =
  "The secret and the connect URL (which carries it) are shown this once: roomkey keeps only its hash. Hand them to the end user's browser now.";

/** An end user as people read it: `ada (Ada Lovelace)`, or the id alone; empty when there is none. */
export function endUserText(endUser: EndUser | undefined): string {
  if (!endUser?.id) return "";
  return endUser.displayName ? `${endUser.id} (${endUser.displayName})` : endUser.id;
}

function sessionFields(session: ConnectSession | undefined, extra: [string, string][] = []): string {
  const s = session;
  return fields([
    ["id", s?.id ?? ""],
    ["status", enumName(ConnectSessionStatusSchema, s?.status ?? 0)],
    ["end user", endUserText(s?.endUser)],
    ["email", s?.endUser?.email ?? ""],
    ["tags", s?.endUser?.tags.join(" ") ?? ""],
    ["tenant", s?.tenantId ?? ""],
    ["integrations", s?.integrations.join(" ") ?? ""],
    ["account", s?.accountId ?? ""],
    ["reauthorizes", yesNo(s?.reauthorize ?? false)],
    ["origins", s?.allowedOrigins.join(" ") ?? ""],
    ["return url", s?.returnUrl ?? ""],
    ["labels", pairs(s?.labels ?? {})],
    ["prefix", s?.displayPrefix ?? ""],
    ["created", time(s?.createTime)],
    ["expires", time(s?.expireTime)],
    ["spent", time(s?.spendTime)],
    ["revoked", time(s?.revokeTime)],
    ...extra,
  ]);
}

interface CreateFlags {
  endUser: string;
  name?: string;
  email?: string;
  tag?: string[];
  integration?: string[];
  account?: string;
  lifetime?: { seconds: bigint };
  origin?: string[];
  returnUrl?: string;
  label?: Record<string, string>;
  tenant?: string;
}

/** `roomkey connect-session …`: connect sessions of AccountService, in the environment of --env. */
export function connectSessionCommands(program: Command, cli: Cli): void {
  const session = program
    .command("connect-session")
    .description("make, read and revoke connect sessions: short-lived secrets for an end user to connect an account");

  session
    .command("create")
    .description("make a connect session; its secret and connect URL are printed this once")
    .requiredOption("--end-user <id>", "your own id of the end user the account will belong to")
    .option("--name <display name>", "the end user's name to show, such as 'Ada Lovelace'")
    .option("--email <email>", "the end user's email address")
    .option("--tag <tag>", "a tag of the end user, such as plan:pro; repeat for more", collect)
    .option("--integration <name>", "an integration the end user may connect; repeat for more", collect)
    .option("--account <id>", "re-authorize this account in place, acc_… (then --integration may be left out)")
    .option("--lifetime <duration>", "how long the session lives, 1m to 24h (default 30m)", parseDuration)
    .option(
      "--origin <origin>",
      "an origin that may use the session from a browser, https://…; repeat for more",
      collect,
    )
    .option("--return-url <url>", "where the hosted page sends the end user when done; on one of the origins")
    .option("--label <key=value>", "a label the account gets; repeat for more", collectLabel)
    .option("--tenant <id>", "your own id of the customer who owns the account (default: the end user's id)")
    .addHelpText(
      "after",
      "\nThe connect URL opens roomkey's hosted connect page for the session; docs/connect-flow.md\n" +
        "says how your own UI can use the secret instead.\n\n" +
        "Example:\n" +
        "  roomkey -e staging connect-session create --end-user u-42 --name 'Ada Lovelace' \\\n" +
        "    --integration hubspot --origin https://app.example.com --lifetime 1h",
    )
    .action(async (flags: CreateFlags, command: Command) => {
      if (!flags.integration?.length && flags.account === undefined) {
        throw new UsageError("--integration: give at least one, such as --integration hubspot, or --account");
      }
      const response = await cli.client(command, AccountService).createConnectSession(
        {
          endUser: {
            id: flags.endUser,
            displayName: flags.name ?? "",
            email: flags.email ?? "",
            tags: flags.tag ?? [],
          },
          tenantId: flags.tenant ?? "",
          integrations: flags.integration ?? [],
          accountId: flags.account ?? "",
          lifetime: flags.lifetime,
          allowedOrigins: flags.origin ?? [],
          returnUrl: flags.returnUrl ?? "",
          labels: flags.label ?? {},
        },
        cli.call,
      );
      cli.print(command, CreateConnectSessionResponseSchema, response, () =>
        sessionFields(response.session, [
          ["secret", response.secret],
          ["connect url", response.connectUrl],
        ]),
      );
      cli.note(shownOnce);
    });

  session
    .command("get")
    .description("show a connect session (never its secret) and the integrations it offers")
    .argument("<id>", "the session's id, cs_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, AccountService).getConnectSession({ id }, cli.call);
      cli.print(command, GetConnectSessionResponseSchema, response, () =>
        [
          sessionFields(response.session),
          "",
          table(
            ["INTEGRATION", "DISPLAY NAME", "AUTH TYPE"],
            response.integrations.map((i) => [i.name, i.displayName, enumName(AuthTypeSchema, i.authType)]),
          ),
        ].join("\n"),
      );
    });

  session
    .command("revoke")
    .description("end a connect session at once: every replica refuses it within a second")
    .argument("<id>", "the session's id, cs_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, AccountService).revokeConnectSession({ id }, cli.call);
      cli.print(command, RevokeConnectSessionResponseSchema, response, () => sessionFields(response.session));
    });
}
