/**
 * What the integrations area needs from storage, queues, pub/sub and providers.
 * Storage and queue modules implement these interfaces and import nothing
 * else of the domain (no service file).
 */
import type { PageRequest } from "../paging.js";
import type { Integration } from "./integrations.js";

/** Persistence of one environment's integrations. */
export interface IntegrationStore {
  get(environment: string, name: string): Promise<Integration | undefined>;
  /** Inserts; false when the name exists. */
  insert(environment: string, integration: Integration): Promise<boolean>;
  /** Replaces if the stored version is still `expectedVersion`. */
  replace(environment: string, integration: Integration, expectedVersion: number): Promise<boolean>;
  /** Up to `page.size + 1` integrations after `page.after`, ordered by name. */
  list(environment: string, page: PageRequest): Promise<Integration[]>;
  remove(environment: string, name: string): Promise<boolean>;
}

export interface IntegrationAccountCounter {
  countActive(environment: string, integration?: string): Promise<number>;
}

/** The environment's data key, for sealing secrets. */
export interface DataKeySource {
  /**
   * Given an `incarnation` (a job's), the key of that incarnation only: an
   * EnvironmentReplacedError if the environment is now another one, so old
   * work never seals or opens anything with its successor's key.
   */
  dataKey(environment: string, incarnation?: string): Promise<Buffer>;
}

/** Whether roomkey may call a URL: the verdict of the outbound guard's address policy. */
export type DestinationCheck = { allowed: true } | { allowed: false; why: string };

/**
 * The URLs roomkey itself calls (the verify request, the token endpoint) must
 * reach the provider and nothing of the operator's own network.
 */
export interface OutboundDestinations {
  /** Bounded in time: a name that does not resolve quickly is allowed here and checked again at connect time. */
  check(url: string): Promise<DestinationCheck>;
}
