import { UnrecoverableError } from "bullmq";
import type { Logger } from "pino";
import type { TokenMaintenance } from "../src/domain/tokens/token-maintenance.js";
import type { JobName } from "../src/queue/queue-names.js";
import type { JobProcessor } from "./job-router.js";

const tokenIdPattern = /^tok_[0-9A-Za-z]{22}$/;

/** How often each environment's token sweep runs. */
export const tokenSweepEveryMs = 60_000;

/** The rotation queue's processors; they only call the domain. */
export function rotationProcessors(deps: {
  tokens: Pick<TokenMaintenance, "retire" | "sweep">;
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
  };
}
