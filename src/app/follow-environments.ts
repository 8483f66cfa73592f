import type { Logger } from "pino";
import type { EnvironmentDirectory } from "../domain/environments/environment-directory.js";
import { isEnvironmentEvent } from "../domain/environments/environments.js";
import type { EventBus } from "../events/event-bus.js";
import { environmentsChannel } from "./services.js";

/**
 * Keeps this process's environment directory current, in every role: events
 * from other replicas at once, a full refresh every `refreshMs` as the
 * fallback. Returns what stops both.
 */
export function followEnvironments(
  bus: Pick<EventBus, "subscribe">,
  directory: Pick<EnvironmentDirectory, "apply" | "refresh">,
  refreshMs: number,
  logger: Logger,
): () => void {
  const unsubscribe = bus.subscribe(environmentsChannel, async (payload) => {
    if (isEnvironmentEvent(payload)) await directory.apply(payload);
  });
  const timer = setInterval(() => {
    directory.refresh().catch((error: unknown) => logger.debug({ err: error }, "environment refresh failed"));
  }, refreshMs);
  return () => {
    clearInterval(timer);
    unsubscribe();
  };
}
