import { toJson } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  AccountService,
  AccountStatus,
  AccountStatusSchema,
  type WatchAccountsRequest,
  type WatchAccountsResponse,
  WatchAccountsResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { enumName, printable, time } from "../output.js";

/** Column widths of a watch line: lines are printed as events come, so the widths cannot be measured first. */
const widths = { time: 20, account: 26, integration: 16, tenant: 16, change: 28 } as const;

const header = line(["TIME", "ACCOUNT", "INTEGRATION", "TENANT", "CHANGE", "DETAIL"]);

function line(cells: string[]): string {
  const padded = Object.values(widths).map((width, column) => printable(cells[column] || "-").padEnd(width));
  return [...padded, printable(cells[padded.length] ?? "")].join(" ").trimEnd();
}

/** One event as one line: when, which account, from which status to which, and the provider's words or the remote name. */
export function watchLine(event: WatchAccountsResponse): string {
  const account = event.account;
  const status = account?.status ?? AccountStatus.UNSPECIFIED;
  const failed = status === AccountStatus.FAILED || status === AccountStatus.NEEDS_REAUTH;
  return line([
    time(event.eventTime),
    account?.id ?? "",
    account?.integration ?? "",
    account?.tenantId ?? "",
    `${enumName(AccountStatusSchema, event.previousStatus) || "-"} -> ${enumName(AccountStatusSchema, status)}`,
    (failed ? account?.statusReason : account?.remoteName || account?.remoteId) ?? "",
  ]);
}

/**
 * Streams WatchAccounts until Ctrl-C (a normal end, exit 0) or until the
 * stream fails (exit 1, with the error's reason, such as WATCH_TOO_SLOW).
 * Each event is printed and flushed as it arrives: a line, or with `--json`
 * one JSON object per line.
 */
export async function watchAccounts(
  cli: Cli,
  command: Command,
  request: Pick<WatchAccountsRequest, "integration" | "tenantId" | "accountIds">,
): Promise<void> {
  const accounts = cli.client(command, AccountService);
  const json = cli.json(command);
  const stop = new AbortController();
  const release = cli.io.onInterrupt(() => stop.abort());
  try {
    const stream = accounts.watchAccounts(request, { signal: stop.signal });
    cli.note("watching account changes (Ctrl-C to stop)");
    if (!json) cli.io.stdout(`${header}\n`);
    for await (const event of stream) {
      cli.io.stdout(`${json ? JSON.stringify(toJson(WatchAccountsResponseSchema, event)) : watchLine(event)}\n`);
    }
    if (!stop.signal.aborted) throw new Error("roomkey ended the watch");
  } catch (error) {
    if (stop.signal.aborted) return;
    throw error;
  } finally {
    release();
  }
}
