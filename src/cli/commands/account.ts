import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  type Account,
  AccountService,
  AccountStatus,
  AccountStatusSchema,
  AuthTypeSchema,
  type ConnectAccountRequestSchema,
  ConnectAccountResponseSchema,
  DeleteAccountResponseSchema,
  GetAccountCredentialsResponseSchema,
  GetAccountResponseSchema,
  ListAccountsResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { collect, collectLabel, enumOption, parseDuration, parsePageSize } from "../flags.js";
import { enumName, fields, pairs, table, time } from "../output.js";
import { secretFrom } from "../stdin.js";
import { endUserText } from "./connect-session.js";
import { credentialFields } from "./credentials.js";
import { printNextPage } from "./paging.js";
import { watchAccounts } from "./watch.js";

/** `--wait` with no value waits this long for the handshake. */
const defaultWaitSeconds = 60n;
/** How often `--wait` reads the account: GetAccount, not a watch, as a watch opened after the connect could miss the change. */
const waitPollMs = 250;

function accountFields(account: Account | undefined): string {
  const a = account;
  return fields([
    ["id", a?.id ?? ""],
    ["integration", a?.integration ?? ""],
    ["tenant", a?.tenantId ?? ""],
    ["end user", endUserText(a?.endUser)],
    ["status", enumName(AccountStatusSchema, a?.status ?? 0)],
    ["status reason", a?.statusReason ?? ""],
    ["auth type", enumName(AuthTypeSchema, a?.authType ?? 0)],
    ["remote id", a?.remoteId ?? ""],
    ["remote name", a?.remoteName ?? ""],
    ["labels", pairs(a?.labels ?? {})],
    ["created", time(a?.createTime)],
    ["updated", time(a?.updateTime)],
    ["credentials expire", time(a?.credentialsExpireTime)],
    ["last refresh", time(a?.lastRefreshTime)],
  ]);
}

interface ConnectFlags {
  integration: string;
  tenant: string;
  apiKey?: string;
  username?: string;
  password?: string;
  label?: Record<string, string>;
  idempotencyKey?: string;
  wait?: true | { seconds: bigint };
}

interface ListFlags {
  integration?: string;
  status?: number;
  tenant?: string;
  endUser?: string;
  endUserTag?: string;
  pageSize?: number;
  pageToken?: string;
}

/** `roomkey account …`: AccountService, in the environment of --env. */
export function accountCommands(program: Command, cli: Cli): void {
  const account = program
    .command("account")
    .description("connect, list, watch and disconnect integrated accounts; read their credentials");

  account
    .command("list")
    .description("list accounts, newest first")
    .option("--integration <name>", "only accounts of this integration")
    .addOption(enumOption("--status <status>", "only accounts in this status", AccountStatusSchema))
    .option("--tenant <id>", "only accounts of this tenant")
    .option("--end-user <id>", "only accounts of this end user")
    .option("--end-user-tag <tag>", "only accounts whose end user has this tag, such as plan:pro")
    .option("--page-size <n>", "accounts per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .action(async (flags: ListFlags, command: Command) => {
      const response = await cli.client(command, AccountService).listAccounts(
        {
          integration: flags.integration ?? "",
          status: flags.status ?? 0,
          tenantId: flags.tenant ?? "",
          endUserId: flags.endUser ?? "",
          endUserTag: flags.endUserTag ?? "",
          pageSize: flags.pageSize ?? 0,
          pageToken: flags.pageToken ?? "",
        },
        cli.call,
      );
      cli.print(command, ListAccountsResponseSchema, response, () =>
        table(
          ["ID", "INTEGRATION", "TENANT", "STATUS", "REMOTE", "UPDATED", "END USER"],
          response.accounts.map((a) => [
            a.id,
            a.integration,
            a.tenantId,
            enumName(AccountStatusSchema, a.status),
            a.remoteName || a.remoteId,
            time(a.updateTime),
            endUserText(a.endUser),
          ]),
        ),
      );
      printNextPage(cli, command, response.nextPageToken);
    });

  account
    .command("get")
    .description("show an account")
    .argument("<id>", "the account's id, acc_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, AccountService).getAccount({ id }, cli.call);
      cli.print(command, GetAccountResponseSchema, response, () => accountFields(response.account));
    });

  account
    .command("connect")
    .description("connect an account of an API key or basic integration; a worker checks it with the provider")
    .requiredOption("--integration <name>", "the integration, such as hubspot")
    .requiredOption("--tenant <id>", "your own id of the customer who owns the account")
    .option("--api-key <key>", "the API key, for API key integrations; '-' reads it from standard input")
    .option("--username <name>", "the username, for basic integrations")
    .option("--password <password>", "the password, for basic integrations; '-' reads it from standard input")
    .option("--label <key=value>", "a label; repeat for more", collectLabel)
    .option("--idempotency-key <key>", "makes a retry safe: the same key within 24 hours returns the first account")
    .option(
      "--wait [duration]",
      "wait until the handshake ends (default 60s); exit 3 unless the account is ACTIVE",
      parseDuration,
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        '  printf %s "$KEY" | roomkey -e staging account connect --integration acme --tenant t-42 --api-key - --wait\n' +
        "  roomkey -e staging account connect --integration jira --tenant t-42 --username ada --password -",
    )
    .action(async (flags: ConnectFlags, command: Command) => {
      const credential = await credentialOf(cli, flags);
      const accounts = cli.client(command, AccountService);
      const response = await accounts.connectAccount(
        {
          integration: flags.integration,
          tenantId: flags.tenant,
          labels: flags.label ?? {},
          credential,
          idempotencyKey: flags.idempotencyKey ?? "",
        },
        cli.call,
      );
      let settled = response;
      if (flags.wait !== undefined && response.account) {
        const seconds = flags.wait === true ? defaultWaitSeconds : flags.wait.seconds;
        const account = await waitForHandshake(cli, accounts, response.account, Number(seconds) * 1000);
        settled = { ...response, account };
        if (account.status !== AccountStatus.ACTIVE) cli.answerNo();
        if (account.status === AccountStatus.CONNECTING) cli.note(`still CONNECTING after ${seconds}s`);
      }
      cli.print(command, ConnectAccountResponseSchema, settled, () => accountFields(settled.account));
    });

  account
    .command("watch")
    .description("print account status changes as they happen, one line each, until Ctrl-C")
    .option("--integration <name>", "only accounts of this integration")
    .option("--tenant <id>", "only accounts of this tenant")
    .option("--account <id>", "only this account; repeat for more", collect)
    .addHelpText(
      "after",
      "\nThe watch is live only: it shows changes from when it starts, with no replay.\n" +
        "Run `roomkey account list` after it starts to see the state it starts from.",
    )
    .action(async (flags: { integration?: string; tenant?: string; account?: string[] }, command: Command) => {
      await watchAccounts(cli, command, {
        integration: flags.integration ?? "",
        tenantId: flags.tenant ?? "",
        accountIds: flags.account ?? [],
      });
    });

  account
    .command("delete")
    .description("disconnect an account: its credentials are wiped and it becomes DISCONNECTED")
    .argument("<id>", "the account's id, acc_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, AccountService).deleteAccount({ id }, cli.call);
      cli.print(command, DeleteAccountResponseSchema, response, () => accountFields(response.account));
    });

  account
    .command("credentials")
    .description("print an account's decrypted credentials (scope accounts:credentials)")
    .argument("<id>", "the account's id, acc_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, AccountService).getAccountCredentials({ id }, cli.call);
      cli.print(command, GetAccountCredentialsResponseSchema, response, () => credentialFields(response));
    });
}

type Credential = MessageInitShape<typeof ConnectAccountRequestSchema>["credential"];

/** The credential the flags give: an API key, or a username and password; exactly one kind. */
async function credentialOf(cli: Cli, flags: ConnectFlags): Promise<Credential> {
  const basic = flags.username !== undefined || flags.password !== undefined;
  if (flags.apiKey !== undefined && basic) {
    throw new UsageError("--api-key and --username/--password: give one kind of credential");
  }
  if (flags.apiKey !== undefined) {
    return { case: "apiKey", value: { key: await secretFrom(cli.io, flags.apiKey, "--api-key") } };
  }
  if (!basic) throw new UsageError("no credential: give --api-key, or --username and --password");
  if (flags.username === undefined) throw new UsageError("--password needs --username");
  const password = flags.password === undefined ? "" : await secretFrom(cli.io, flags.password, "--password");
  return { case: "basic", value: { username: flags.username, password } };
}

/** Reads the account until it leaves CONNECTING or `timeoutMs` passes; returns what it last read. */
async function waitForHandshake(
  cli: Cli,
  accounts: Client<typeof AccountService>,
  connected: Account,
  timeoutMs: number,
): Promise<Account> {
  const deadline = Date.now() + timeoutMs;
  let account = connected;
  while (account.status === AccountStatus.CONNECTING && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, waitPollMs));
    const { account: read } = await accounts.getAccount({ id: connected.id }, cli.call);
    if (read) account = read;
  }
  return account;
}
