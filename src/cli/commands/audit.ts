import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Command, InvalidArgumentError } from "commander";
import {
  AuditActorKindSchema,
  type AuditEvent,
  EnvironmentService,
  ListAuditEventsResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { parseDuration } from "../flags.js";
import { enumName, pairs, table, time } from "../output.js";
import { printNextPage } from "./paging.js";

/**
 * A point in time: an RFC 3339 time (`2026-12-01T00:00:00Z`), or a duration
 * ago (`24h`: 24 hours before now).
 */
export function parseSince(text: string, now: () => Date = () => new Date()): Timestamp {
  if (/^(\d+[smhdw])+$/.test(text)) {
    const { seconds } = parseDuration(text);
    return timestampFromDate(new Date(now().getTime() - Number(seconds) * 1000));
  }
  const at = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)
    ? Date.parse(text)
    : NaN;
  if (Number.isNaN(at)) {
    throw new InvalidArgumentError("Use an RFC 3339 time such as 2026-12-01T00:00:00Z, or a duration ago such as 24h.");
  }
  return timestampFromDate(new Date(at));
}

/** A page size from 1 to 500 (the audit log's most). */
function parseAuditPageSize(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 500) {
    throw new InvalidArgumentError("Use a whole number from 1 to 500.");
  }
  return Number(text);
}

function actor(event: AuditEvent): string {
  const kind = enumName(AuditActorKindSchema, event.actorKind);
  return event.actorId ? `${kind} ${event.actorId}` : kind;
}

/** `roomkey.v1.TokenService/CreateToken` as `TokenService/CreateToken`. */
function shortMethod(method: string): string {
  return method.startsWith("roomkey.v1.") ? method.slice("roomkey.v1.".length) : method;
}

interface ListFlags {
  since?: Timestamp;
  until?: Timestamp;
  actor?: string;
  resource?: string;
  method?: string;
  pageSize?: number;
  pageToken?: string;
}

/** `roomkey audit …`: the environment's audit log (ListAuditEvents; scope audit:read). */
export function auditCommands(program: Command, cli: Cli): void {
  const audit = program.command("audit").description("read the environment's audit log");
  audit
    .command("list")
    .description("list audit events, newest first; the filters combine")
    .option("--since <time>", "only events at or after this time: RFC 3339, or a duration ago such as 24h", (text) =>
      parseSince(text),
    )
    .option("--until <time>", "only events before this time: RFC 3339, or a duration ago", (text) => parseSince(text))
    .option("--actor <id>", "only events of this token or connect session id")
    .option("--resource <id>", "only events on this resource: a token, account or endpoint id, an integration name")
    .option(
      "--method <method>",
      "only this method, such as roomkey.v1.TokenService/CreateToken or worker/account.status",
    )
    .option("--page-size <n>", "events per page, 1 to 500 (default 50)", parseAuditPageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .addHelpText(
      "after",
      "\nExample:\n  roomkey -e production audit list --since 24h --method roomkey.v1.TokenService/CreateToken",
    )
    .action(async (flags: ListFlags, command: Command) => {
      const response = await cli.client(command, EnvironmentService).listAuditEvents(
        {
          ...(flags.since ? { startTime: flags.since } : {}),
          ...(flags.until ? { endTime: flags.until } : {}),
          actorId: flags.actor ?? "",
          resource: flags.resource ?? "",
          method: flags.method ?? "",
          pageSize: flags.pageSize ?? 0,
          pageToken: flags.pageToken ?? "",
        },
        cli.call,
      );
      cli.print(command, ListAuditEventsResponseSchema, response, () =>
        table(
          ["TIME", "ACTOR", "METHOD", "RESOURCE", "OUTCOME", "REASON", "REQUEST ID", "PEER", "DETAILS"],
          response.events.map((event) => [
            time(event.time),
            actor(event),
            shortMethod(event.method),
            event.resource,
            event.outcome,
            event.reason,
            event.requestId,
            event.peer,
            pairs(event.details),
          ]),
        ),
      );
      // The token continues these exact times: a duration ago means another time on the next run.
      if (response.nextPageToken && !cli.json(command) && (flags.since || flags.until)) {
        const exact = [
          flags.since ? `--since ${timestampDate(flags.since).toISOString()}` : "",
          flags.until ? `--until ${timestampDate(flags.until).toISOString()}` : "",
        ].filter((flag) => flag !== "");
        cli.note(`more: run it with ${exact.join(" ")} --page-token ${response.nextPageToken}`);
      } else {
        printNextPage(cli, command, response.nextPageToken);
      }
    });
}
