import { UnrecoverableError } from "bullmq";
import type { Logger } from "pino";
import type { Refresher } from "../src/domain/accounts/refresher.js";
import type { TokenMaintenance } from "../src/domain/tokens/token-maintenance.js";
import type { JobName } from "../src/queue/queue-names.js";
import type { JobProcessor } from "./job-router.js";

const tokenIdPattern = /^tok_[0-9A-Za-z]{22}$/;
const accountIdPattern = /^acc_[0-9A-Za-z]{22}$/;

/** How often each environment's token sweep runs. */
export const tokenSweepEveryMs = 60_000;

/** The rotation queue's processors; they only call the domain. */
export function rotationProcessors(deps: {
  tokens: Pick<TokenMaintenance, "retire" | "sweep">;
  refresher: Pick<Refresher, "refresh">;
  sweepAccounts(environment: string, incarnation: string): Promise<unknown>;
  logger: Logger;
}): Record<JobName<"rotation">, JobProcessor> {
  return {
    async "retire-token"(job, environment) {
      const tokenId = (job.data as { tokenId?: unknown } | null)?.tokenId;
      if (typeof tokenId !== "string" || !tokenIdPattern.test(tokenId)) {
        throw new UnrecoverableError("retire-token: data.tokenId is not a token id");
      }
      const { retryAt } = await deps.tokens.retire(environment, tokenId);
      // Ran before the grace ended (clocks apart): the sweep retires it once it has.
      if (retryAt) deps.logger.info({ environment, tokenId, retryAt }, "grace not over yet; the sweep will retire it");
      return { retryAt: retryAt?.toISOString() };
    },
    async "sweep-tokens"(_job, environment) {
      return deps.tokens.sweep(environment);
    },
    async "refresh-account"(job, environment, incarnation) {
      const data = job.data as { accountId?: unknown; seenVersion?: unknown } | null;
      const accountId = data?.accountId;
      const seenVersion = typeof data?.seenVersion === "number" ? data.seenVersion : undefined;
      if (typeof accountId !== "string" || !accountIdPattern.test(accountId)) {
        throw new UnrecoverableError("refresh-account: data.accountId is not an account id");
      }
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const result = await deps.refresher.refresh(environment, accountId, {
        lastTry,
        incarnation,
        ...(seenVersion === undefined ? {} : { seenVersion }),
      });
      if (result.outcome === "gave_up" || result.outcome === "needs_reauth") {
        deps.logger.warn({ environment, accountId, ...result }, "OAuth refresh did not succeed");
      }
      return result;
    },
    async "sweep-accounts"(_job, environment, incarnation) {
      return deps.sweepAccounts(environment, incarnation);
    },
  };
}
