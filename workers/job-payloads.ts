import { type Job, UnrecoverableError } from "bullmq";
import type { IncarnationBound, JobData, JobName, QueueKind } from "../src/queue/queue-names.js";

/** A job's payload as an object (an empty one when it is not an object at all). */
function dataOf(job: Pick<Job, "data">): object {
  const data: unknown = job.data;
  return typeof data === "object" && data !== null ? data : {};
}

/** The incarnation a payload names, whatever its job; undefined for jobs queued before payloads carried one. */
export function incarnationOf(job: Pick<Job, "data">): unknown {
  return own(dataOf(job), "incarnation");
}

const accountIdPattern = /^acc_[0-9A-Za-z]{22}$/;
const tokenIdPattern = /^tok_[0-9A-Za-z]{22}$/;
const eventIdPattern = /^evt_[0-9A-Za-z]{22}$/;
const endpointIdPattern = /^we_[0-9A-Za-z]{22}$/;
const deliveryIdPattern = /^whd_[0-9A-Za-z]{22}$/;
const fingerprintPattern = /^[0-9a-f]{16}$/;

/** An own property's value; inherited ones (`__proto__`, `toString`) are not payload. */
function own(data: object, key: string): unknown {
  return Object.getOwnPropertyDescriptor(data, key)?.value;
}

function id(data: object, job: string, key: string, pattern: RegExp, what: string): string {
  const value = own(data, key);
  if (typeof value !== "string" || !pattern.test(value))
    throw new UnrecoverableError(`${job}: data.${key} is not ${what}`);
  return value;
}

function incarnation(data: object): IncarnationBound {
  const value = own(data, "incarnation");
  return typeof value === "string" ? { incarnation: value } : {};
}

type Reader<K extends QueueKind, N extends JobName<K>> = (job: Pick<Job, "data">) => JobData<K, N>;
type Readers = { [K in QueueKind]: { [N in JobName<K>]: Reader<K, N> } };

/**
 * Reads a job's payload as `QueueJobs` types it, checking every field first,
 * one reader per queue and job name (`payloads.handshake.connect(job)`): a
 * payload that is not what its producer writes (an old job, a hand-made one)
 * fails the job for good, naming the field it got wrong, never a crash or a
 * wrong write. The only place workers read `job.data`.
 */
export const payloads: Readers = {
  handshake: {
    connect: (job) => {
      const data = dataOf(job);
      const accountId = id(data, "connect", "accountId", accountIdPattern, "an account id");
      const attempt = own(data, "attempt");
      if (typeof attempt !== "number" || !Number.isInteger(attempt) || attempt < 1) {
        throw new UnrecoverableError("connect: data.attempt is not a positive integer");
      }
      return { accountId, attempt, ...incarnation(data) };
    },
    "sweep-connecting": (job) => (own(dataOf(job), "noGrace") === true ? { noGrace: true } : {}),
  },
  rotation: {
    "retire-token": (job) => {
      const data = dataOf(job);
      return { tokenId: id(data, "retire-token", "tokenId", tokenIdPattern, "a token id"), ...incarnation(data) };
    },
    "refresh-account": (job) => {
      const data = dataOf(job);
      const seenVersion = own(data, "seenVersion");
      return {
        accountId: id(data, "refresh-account", "accountId", accountIdPattern, "an account id"),
        ...(typeof seenVersion === "number" ? { seenVersion } : {}),
        ...incarnation(data),
      };
    },
    "revoke-account": (job) => {
      const data = dataOf(job);
      return {
        accountId: id(data, "revoke-account", "accountId", accountIdPattern, "an account id"),
        ...incarnation(data),
      };
    },
    "rewrap-data-key": (job) => {
      const data = dataOf(job);
      return {
        to: id(data, "rewrap-data-key", "to", fingerprintPattern, "a master key fingerprint"),
        ...incarnation(data),
      };
    },
  },
  webhook: {
    deliver: (job) => {
      const data = dataOf(job);
      return {
        deliveryId: id(data, "deliver", "deliveryId", deliveryIdPattern, "a delivery id"),
        eventId: id(data, "deliver", "eventId", eventIdPattern, "an event id"),
        endpointId: id(data, "deliver", "endpointId", endpointIdPattern, "an endpoint id"),
        ...incarnation(data),
      };
    },
  },
};
