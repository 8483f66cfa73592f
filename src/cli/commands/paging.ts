import type { Command } from "commander";
import type { Cli } from "../cli.js";

/**
 * Says how to get the next page. On stderr, so that stdout is one page's
 * table; with `--json` the response's own `nextPageToken` says it. The token
 * continues only the same listing, so the same filters go with it.
 */
export function printNextPage(cli: Cli, command: Command, nextPageToken: string): void {
  if (nextPageToken && !cli.json(command)) cli.note(`more: run the same command with --page-token ${nextPageToken}`);
}
