import type { Logger } from "pino";
import type { Refresher } from "../src/domain/accounts/refresher.js";
import type { UpstreamRevocations } from "../src/domain/accounts/upstream-revocation.js";
import type { MasterKeyRotation, RewrapOutcome } from "../src/domain/environments/master-key-rotation.js";
import type { TokenMaintenance } from "../src/domain/tokens/token-maintenance.js";
import type { JobName } from "../src/queue/queue-names.js";
import { payloads } from "./job-payloads.js";
import type { JobProcessor } from "./job-router.js";

/** How often each environment's token sweep runs. */
export const tokenSweepEveryMs = 60_000;

/** The rotation queue's processors; they only call the domain. */
export function rotationProcessors(deps: {
  tokens: Pick<TokenMaintenance, "retire">;
  refresher: Pick<Refresher, "refresh">;
  revocations: Pick<UpstreamRevocations, "run">;
  dataKeys: Pick<MasterKeyRotation, "rewrap">;
  /** Told what each rewrap did (environment, from key, to key): for the audit log. */
  onRewrap?: (outcome: RewrapOutcome) => unknown;
  logger: Logger;
}): Record<JobName<"rotation">, JobProcessor> {
  return {
    async "retire-token"(job, environment) {
      const { tokenId } = payloads.rotation["retire-token"](job);
      const { retryAt } = await deps.tokens.retire(environment, tokenId);
      // Ran before the grace ended (clocks apart): the sweep retires it once it has.
      if (retryAt) deps.logger.info({ environment, tokenId, retryAt }, "grace not over yet; the sweep will retire it");
      return { retryAt: retryAt?.toISOString() };
    },
    async "refresh-account"(job, environment, incarnation) {
      const { accountId, seenVersion } = payloads.rotation["refresh-account"](job);
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
    async "revoke-account"(job, environment, incarnation) {
      const { accountId } = payloads.rotation["revoke-account"](job);
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const result = await deps.revocations.run(environment, accountId, { lastTry, incarnation });
      // The reason is the provider's answer with every token masked: it never carries one.
      if (result.outcome === "failed") {
        deps.logger.warn({ environment, accountId, reason: result.reason }, "upstream revocation failed");
      } else if (result.outcome === "skipped") {
        deps.logger.debug({ environment, accountId, why: result.why }, "upstream revocation skipped");
      }
      return result;
    },
    async "rewrap-data-key"(job, environment, incarnation) {
      const { to } = payloads.rotation["rewrap-data-key"](job);
      const result = await deps.dataKeys.rewrap(environment, incarnation, to);
      if (result.outcome === "rewrapped") {
        deps.logger.info(
          { environment, from: result.from.id, fromFingerprint: result.from.fingerprint, to: result.to.id },
          "data key rewrapped under the current master key",
        );
      } else if (result.outcome === "skipped") {
        deps.logger.warn({ environment, fingerprint: result.fingerprint, to }, `data key not rewrapped: ${result.why}`);
      }
      await deps.onRewrap?.(result);
      return result;
    },
  };
}
