import type { Command } from "commander";
import {
  CreateWebhookEndpointResponseSchema,
  DeleteWebhookEndpointResponseSchema,
  EnvironmentService,
  GetWebhookEndpointResponseSchema,
  ListWebhookDeliveriesResponseSchema,
  ListWebhookEndpointsResponseSchema,
  RedeliverWebhookEventResponseSchema,
  RotateWebhookEndpointSecretResponseSchema,
  UpdateWebhookEndpointResponseSchema,
  type WebhookDelivery,
  WebhookDeliveryStatusSchema,
  type WebhookEndpoint,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { collect, enumOption, parseDuration, parsePageSize } from "../flags.js";
import { enumName, fields, table, time, yesNo } from "../output.js";
import { printNextPage } from "./paging.js";

const shownOnce =
  "The signing secret is shown this once: roomkey keeps it sealed and never returns it. Put it in the receiver's configuration now.";

const eventHelp = `
Event types are such as account.active, account.failed, account.needs_reauth,
token.created, token.rotated, token.expiring; docs/webhooks.md lists them all.
The API refuses a type it does not know, naming endpoint.event_types.`;

function endpointFields(endpoint: WebhookEndpoint | undefined, extra: [string, string][] = []): string {
  const w = endpoint;
  return fields([
    ["id", w?.id ?? ""],
    ["url", w?.url ?? ""],
    ["event types", eventTypes(w)],
    ["enabled", yesNo(w?.enabled ?? false)],
    ["disabled reason", w?.disabledReason ?? ""],
    ["description", w?.description ?? ""],
    ["failing since", time(w?.failingSince)],
    ["secret rotated", time(w?.secretRotateTime)],
    ["previous secret until", time(w?.previousSecretExpireTime)],
    ["created", time(w?.createTime)],
    ["updated", time(w?.updateTime)],
    ...extra,
  ]);
}

/** An endpoint with no event types receives every type. */
function eventTypes(endpoint: WebhookEndpoint | undefined): string {
  return endpoint?.eventTypes.length ? endpoint.eventTypes.join(" ") : "all";
}

function deliveryTable(deliveries: WebhookDelivery[]): string {
  return table(
    ["ID", "EVENT", "TYPE", "ENDPOINT", "STATUS", "ATTEMPTS", "CODE", "ERROR", "LATENCY", "LAST ATTEMPT"],
    deliveries.map((d) => [
      d.id,
      d.eventId,
      d.eventType,
      d.endpointId,
      enumName(WebhookDeliveryStatusSchema, d.status),
      String(d.attempts),
      // 0: no answer (a timeout, a refused connection or address), which the error says.
      d.lastResponseCode ? String(d.lastResponseCode) : "",
      d.lastError,
      d.lastAttemptTime ? `${d.lastLatencyMs}ms` : "",
      time(d.lastAttemptTime),
    ]),
  );
}

interface CreateFlags {
  url: string;
  event?: string[];
  description?: string;
  disabled?: boolean;
}

interface UpdateFlags {
  url?: string;
  event?: string[];
  allEvents?: boolean;
  description?: string;
  enable?: boolean;
  disable?: boolean;
}

interface DeliveriesFlags {
  endpoint?: string;
  event?: string;
  status?: number;
  pageSize?: number;
  pageToken?: string;
}

/** The endpoint fields an update sets, and its update_mask (AIP-134) naming exactly those. */
function updateOf(id: string, flags: UpdateFlags) {
  if (flags.enable && flags.disable) throw new UsageError("--enable and --disable: give one");
  if (flags.event?.length && flags.allEvents) throw new UsageError("--event and --all-events: give one");
  const paths: string[] = [];
  if (flags.url !== undefined) paths.push("url");
  if (flags.event?.length || flags.allEvents) paths.push("event_types");
  if (flags.enable || flags.disable) paths.push("enabled");
  if (flags.description !== undefined) paths.push("description");
  if (paths.length === 0) {
    throw new UsageError("nothing to change: give --url, --event, --all-events, --description, --enable or --disable");
  }
  return {
    endpoint: {
      id,
      url: flags.url ?? "",
      eventTypes: flags.event ?? [],
      enabled: flags.enable || flags.disable ? flags.enable === true : undefined,
      description: flags.description ?? "",
    },
    updateMask: { paths },
  };
}

/** `roomkey webhook …`: the webhook endpoints of the environment of --env, and their deliveries (EnvironmentService). */
export function webhookCommands(program: Command, cli: Cli): void {
  const webhook = program
    .command("webhook")
    .description("manage the environment's webhook endpoints; list and redeliver their deliveries");

  webhook
    .command("create")
    .description("create a webhook endpoint; its signing secret is printed this once")
    .requiredOption("--url <url>", "where events are POSTed, https://…")
    .option(
      "--event <type>",
      "an event type to receive, such as account.failed; repeat for more (default: all)",
      collect,
    )
    .option("--description <text>", "free text")
    .option("--disabled", "create it disabled: no events are delivered until it is enabled")
    .addHelpText(
      "after",
      `${eventHelp}\n\nExample:\n` +
        "  roomkey -e staging webhook create --url https://hooks.example.com/roomkey \\\n" +
        "    --event account.failed --event account.needs_reauth --description on-call",
    )
    .action(async (flags: CreateFlags, command: Command) => {
      const response = await cli.client(command, EnvironmentService).createWebhookEndpoint(
        {
          endpoint: {
            url: flags.url,
            eventTypes: flags.event ?? [],
            enabled: flags.disabled ? false : undefined,
            description: flags.description ?? "",
          },
        },
        cli.call,
      );
      cli.print(command, CreateWebhookEndpointResponseSchema, response, () =>
        endpointFields(response.endpoint, [["signing secret", response.signingSecret]]),
      );
      cli.note(shownOnce);
    });

  webhook
    .command("list")
    .description("list the environment's webhook endpoints, oldest first")
    .option("--page-size <n>", "endpoints per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .action(async (flags: { pageSize?: number; pageToken?: string }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .listWebhookEndpoints({ pageSize: flags.pageSize ?? 0, pageToken: flags.pageToken ?? "" }, cli.call);
      cli.print(command, ListWebhookEndpointsResponseSchema, response, () =>
        table(
          ["ID", "URL", "EVENTS", "ENABLED", "FAILING SINCE", "DESCRIPTION"],
          response.endpoints.map((w) => [
            w.id,
            w.url,
            eventTypes(w),
            yesNo(w.enabled ?? false),
            time(w.failingSince),
            w.description,
          ]),
        ),
      );
      printNextPage(cli, command, response.nextPageToken);
    });

  webhook
    .command("get")
    .description("show a webhook endpoint (never its secret)")
    .argument("<id>", "the endpoint's id, we_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, EnvironmentService).getWebhookEndpoint({ id }, cli.call);
      cli.print(command, GetWebhookEndpointResponseSchema, response, () => endpointFields(response.endpoint));
    });

  webhook
    .command("update")
    .description("change a webhook endpoint: only the fields given change")
    .argument("<id>", "the endpoint's id, we_…")
    .option("--url <url>", "a new URL")
    .option("--event <type>", "receive only these event types; repeat for more (replaces the list)", collect)
    .option("--all-events", "receive every event type")
    .option("--description <text>", "a new description ('' clears it)")
    .option("--enable", "deliver events again, also to an endpoint roomkey disabled")
    .option("--disable", "stop delivering events")
    .addHelpText(
      "after",
      `${eventHelp}\n\nExample:\n  roomkey -e staging webhook update we_0VcEM5ZaJ2kq8mT4xR6bWd --enable`,
    )
    .action(async (id: string, flags: UpdateFlags, command: Command) => {
      const request = updateOf(id, flags);
      const response = await cli.client(command, EnvironmentService).updateWebhookEndpoint(request, cli.call);
      cli.print(command, UpdateWebhookEndpointResponseSchema, response, () => endpointFields(response.endpoint));
    });

  webhook
    .command("delete")
    .description("delete a webhook endpoint; its pending deliveries end FAILED")
    .argument("<id>", "the endpoint's id, we_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, EnvironmentService).deleteWebhookEndpoint({ id }, cli.call);
      cli.print(command, DeleteWebhookEndpointResponseSchema, response, () => `deleted webhook endpoint ${id}`);
    });

  webhook
    .command("rotate-secret")
    .description("give an endpoint a new signing secret, printed this once; the old one also signs for an overlap")
    .argument("<id>", "the endpoint's id, we_…")
    .option(
      "--overlap <duration>",
      "how long deliveries are also signed with the old secret, 0 to 7d (default 24h)",
      parseDuration,
    )
    .action(async (id: string, flags: { overlap?: { seconds: bigint } }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .rotateWebhookEndpointSecret({ id, overlap: flags.overlap }, cli.call);
      cli.print(command, RotateWebhookEndpointSecretResponseSchema, response, () =>
        endpointFields(response.endpoint, [["signing secret", response.signingSecret]]),
      );
      cli.note(shownOnce);
    });

  webhook
    .command("deliveries")
    .description("list the deliveries of one endpoint or of one event, newest first")
    .option("--endpoint <id>", "deliveries to this endpoint, we_…")
    .option("--event <id>", "deliveries of this event, evt_…")
    .addOption(enumOption("--status <status>", "only deliveries in this status", WebhookDeliveryStatusSchema))
    .option("--page-size <n>", "deliveries per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .addHelpText(
      "after",
      "\nGive exactly one of --endpoint and --event. CODE is the HTTP status of the last answer\n" +
        "(- when there was none); ERROR says why the last attempt failed.\n\n" +
        "Example:\n  roomkey -e staging webhook deliveries --endpoint we_0VcEM5ZaJ2kq8mT4xR6bWd --status failed",
    )
    .action(async (flags: DeliveriesFlags, command: Command) => {
      if ((flags.endpoint === undefined) === (flags.event === undefined)) {
        throw new UsageError("give exactly one of --endpoint and --event");
      }
      const response = await cli.client(command, EnvironmentService).listWebhookDeliveries(
        {
          endpointId: flags.endpoint ?? "",
          eventId: flags.event ?? "",
          status: flags.status ?? 0,
          pageSize: flags.pageSize ?? 0,
          pageToken: flags.pageToken ?? "",
        },
        cli.call,
      );
      cli.print(command, ListWebhookDeliveriesResponseSchema, response, () => deliveryTable(response.deliveries));
      printNextPage(cli, command, response.nextPageToken);
    });

  webhook
    .command("redeliver")
    .description("deliver an event again, with the same webhook-id; prints the deliveries queued")
    .argument("<event-id>", "the event's id, evt_… (the webhook-id header)")
    .option("--endpoint <id>", "only to this endpoint (default: every enabled endpoint the event went to)")
    .action(async (eventId: string, flags: { endpoint?: string }, command: Command) => {
      const response = await cli
        .client(command, EnvironmentService)
        .redeliverWebhookEvent({ eventId, endpointId: flags.endpoint ?? "" }, cli.call);
      cli.print(command, RedeliverWebhookEventResponseSchema, response, () => deliveryTable(response.deliveries));
    });
}
