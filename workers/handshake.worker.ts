import type { Logger } from "pino";
import type { Handshakes } from "../src/domain/accounts/handshake.js";
import { ProviderUnavailableError } from "../src/domain/accounts/handshake.js";
import type { JobName } from "../src/queue/queue-names.js";
import { payloads } from "./job-payloads.js";
import type { JobProcessor } from "./job-router.js";

/** The provider's `Retry-After`, when the error carries one (see src/queue/retry-policy.ts). */
export function retryAfterOf(error: unknown): number | undefined {
  return error instanceof ProviderUnavailableError ? error.retryAfterMs : undefined;
}

/** The handshake queue's processors; they only call the domain. */
export function handshakeProcessors(deps: {
  handshakes: Pick<Handshakes, "run">;
  sweep(environment: string, options: { noGrace: boolean; incarnation: string }): Promise<unknown>;
  logger: Logger;
}): Record<JobName<"handshake">, JobProcessor> {
  return {
    async connect(job, environment, incarnation) {
      const { accountId, attempt } = payloads.handshake.connect(job);
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const result = await deps.handshakes.run(environment, accountId, attempt, { lastTry, incarnation });
      if (result.outcome === "skipped")
        deps.logger.debug({ environment, accountId, why: result.why }, "handshake skipped");
      return result;
    },
    async "sweep-connecting"(job, environment, incarnation) {
      const { noGrace } = payloads.handshake["sweep-connecting"](job);
      return deps.sweep(environment, { noGrace: noGrace === true, incarnation });
    },
  };
}
