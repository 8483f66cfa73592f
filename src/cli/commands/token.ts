import { getOption } from "@bufbuild/protobuf";
import { field } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { Command } from "commander";
import {
  CreateTokenRequestSchema,
  CreateTokenResponseSchema,
  GetTokenResponseSchema,
  ListTokensResponseSchema,
  RevokeTokenResponseSchema,
  RotateTokenResponseSchema,
  type Token,
  TokenService,
  TokenStateSchema,
  VerifyStatusSchema,
  VerifyTokenResponseSchema,
} from "../../client/index.js";
import type { Cli } from "../cli.js";
import { UsageError } from "../errors.js";
import { collect, enumOption, parseDuration, parsePageSize } from "../flags.js";
import { enumName, fields, table, time, yesNo } from "../output.js";
import { secretFrom } from "../stdin.js";
import { printNextPage } from "./paging.js";

/**
 * The scopes a token may get, read from the contract's validation rule on
 * CreateTokenRequest.scopes (which the server enforces), so that the help
 * never lists a scope the API would refuse.
 */
function grantableScopes(): string[] {
  const rules = getOption(CreateTokenRequestSchema.field.scopes, field);
  const items = rules.type.case === "repeated" ? rules.type.value.items : undefined;
  return items?.type.case === "string" ? [...items.type.value.in] : [];
}

const shownOnce = "The secret is shown this once: roomkey keeps only its hash. Store it now.";

function tokenFields(token: Token | undefined, extra: [string, string][] = []): string {
  const t = token;
  return fields([
    ["id", t?.id ?? ""],
    ["name", t?.name ?? ""],
    ["state", enumName(TokenStateSchema, t?.state ?? 0)],
    ["scopes", t?.scopes.join(" ") ?? ""],
    ["prefix", t?.displayPrefix ?? ""],
    ["environment", t?.environment ?? ""],
    ["created", time(t?.createTime)],
    ["created by", t?.createdBy ?? ""],
    ["expires", time(t?.expireTime) || "never"],
    ["last used", time(t?.lastUsedTime)],
    ["revoked", time(t?.revokeTime)],
    ["rotated", time(t?.rotateTime)],
    ["grace ends", time(t?.graceExpireTime)],
    ["successor", t?.successorId ?? ""],
    ["predecessor", t?.predecessorId ?? ""],
    ...extra,
  ]);
}

interface CreateFlags {
  name: string;
  scope?: string[];
  ttl?: { seconds: bigint };
  idempotencyKey?: string;
}

/** `roomkey token …`: TokenService, in the environment of --env. */
export function tokenCommands(program: Command, cli: Cli): void {
  const token = program.command("token").description("create, list, rotate, revoke and verify API tokens");

  token
    .command("create")
    .description("create a token; its secret is printed this once")
    .requiredOption("--name <name>", "a name for people, such as billing-service")
    .option("--scope <scope>", "a scope to grant, such as accounts:read; repeat for more (at least one)", collect)
    .option(
      "--ttl <duration>",
      "lifetime, such as 30d (default: the environment's default token lifetime)",
      parseDuration,
    )
    .option("--idempotency-key <key>", "makes a retry safe: the same key within 24 hours returns the first token")
    .addHelpText(
      "after",
      () =>
        `\nScopes: ${grantableScopes().join(" ")}\n\n` +
        "Example:\n  roomkey -e staging token create --name ci --scope tokens:read --scope accounts:read --ttl 30d",
    )
    .action(async (flags: CreateFlags, command: Command) => {
      if (!flags.scope?.length) throw new UsageError("--scope: give at least one, such as --scope accounts:read");
      const response = await cli.client(command, TokenService).createToken(
        {
          name: flags.name,
          scopes: flags.scope,
          ttl: flags.ttl,
          idempotencyKey: flags.idempotencyKey ?? "",
        },
        cli.call,
      );
      cli.print(command, CreateTokenResponseSchema, response, () =>
        tokenFields(response.token, response.secret ? [["secret", response.secret]] : []),
      );
      if (response.replayed) cli.note(response.notice || "This key was used before: the secret is not shown again.");
      else cli.note(shownOnce);
    });

  token
    .command("list")
    .description("list the environment's tokens, newest first")
    .addOption(enumOption("--state <state>", "only tokens in this state", TokenStateSchema))
    .option("--page-size <n>", "tokens per page, 1 to 100 (default 50)", parsePageSize)
    .option("--page-token <token>", "continue a listing: the token a previous page printed")
    .action(async (flags: { state?: number; pageSize?: number; pageToken?: string }, command: Command) => {
      const response = await cli
        .client(command, TokenService)
        .listTokens(
          { state: flags.state ?? 0, pageSize: flags.pageSize ?? 0, pageToken: flags.pageToken ?? "" },
          cli.call,
        );
      cli.print(command, ListTokensResponseSchema, response, () =>
        table(
          ["ID", "NAME", "STATE", "PREFIX", "SCOPES", "EXPIRES", "LAST USED"],
          response.tokens.map((t) => [
            t.id,
            t.name,
            enumName(TokenStateSchema, t.state),
            t.displayPrefix,
            t.scopes.join(" "),
            time(t.expireTime) || "never",
            time(t.lastUsedTime),
          ]),
        ),
      );
      printNextPage(cli, command, response.nextPageToken);
    });

  token
    .command("get")
    .description("show a token (never its secret)")
    .argument("<id>", "the token's id, tok_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, TokenService).getToken({ id }, cli.call);
      cli.print(command, GetTokenResponseSchema, response, () => tokenFields(response.token));
    });

  token
    .command("revoke")
    .description("revoke a token: every replica refuses it within a second")
    .argument("<id>", "the token's id, tok_…")
    .action(async (id: string, _flags: object, command: Command) => {
      const response = await cli.client(command, TokenService).revokeToken({ id }, cli.call);
      cli.print(command, RevokeTokenResponseSchema, response, () => tokenFields(response.token));
    });

  token
    .command("rotate")
    .description("issue a successor with a new secret; the old secret works for a grace period")
    .argument("<id>", "the token's id, tok_…")
    .option("--grace <duration>", "how long the old secret keeps working, 0 to 7d (default 24h)", parseDuration)
    .action(async (id: string, flags: { grace?: { seconds: bigint } }, command: Command) => {
      const response = await cli.client(command, TokenService).rotateToken({ id, gracePeriod: flags.grace }, cli.call);
      cli.print(command, RotateTokenResponseSchema, response, () =>
        tokenFields(response.token, [
          ["secret", response.secret],
          ["previous", `${response.previous?.id ?? ""} works until ${time(response.previous?.graceExpireTime)}`],
        ]),
      );
      cli.note(shownOnce);
    });

  token
    .command("verify")
    .description("check a token as a service would: is it valid in this environment, and why not (exit 3 if not)")
    .argument("[secret]", "the token's secret; '-' or left out: read it from standard input")
    .action(async (given: string | undefined, _flags: object, command: Command) => {
      const secret = await secretFrom(cli.io, given, "token verify");
      const response = await cli.client(command, TokenService).verifyToken({ token: secret }, cli.call);
      cli.print(command, VerifyTokenResponseSchema, response, () =>
        fields([
          ["valid", yesNo(response.valid)],
          ["status", enumName(VerifyStatusSchema, response.status)],
          ["token id", response.tokenId],
          ["scopes", response.scopes.join(" ")],
          ["environment", response.environment],
          ["expires", response.valid ? time(response.expireTime) || "never" : ""],
          ["in grace period", yesNo(response.inGracePeriod)],
        ]),
      );
      if (!response.valid) cli.answerNo();
    });
}
