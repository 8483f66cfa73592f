import type { Logger } from "pino";
import type { createWebhookDelivery } from "../src/domain/webhooks/webhook-delivery.js";
import type { JobName } from "../src/queue/queue-names.js";
import { payloads } from "./job-payloads.js";
import type { JobProcessor } from "./job-router.js";

/** How often, at most, each environment's webhook log is purged of entries past the retention period. */
export const webhookPurgeEveryMs = 3_600_000;

/** The webhook queue's processors; they only call the domain. */
export function webhookProcessors(deps: {
  delivery: Pick<ReturnType<typeof createWebhookDelivery>, "deliver">;
  logger: Logger;
}): Record<JobName<"webhook">, JobProcessor> {
  return {
    async deliver(job, environment) {
      const { deliveryId, eventId, endpointId } = payloads.webhook.deliver(job);
      // A job re-queued by the sweep has only the attempts its delivery has left.
      return deps.delivery.deliver(
        environment,
        { deliveryId, eventId, endpointId, jobId: job.id ?? "" },
        job.attemptsMade,
        job.opts.attempts ?? 1,
      );
    },
  };
}
