import { Job, UnrecoverableError } from "bullmq";
import { describe, expect, it } from "vitest";
import { createJobRouter, type JobProcessor } from "../../workers/job-router.js";
import { memoryLogger, rejectionOf } from "./fakes.js";

type JobQueue = ConstructorParameters<typeof Job>[0];

/**
 * A real Job on a stub queue. Job's constructor only reads `name`,
 * `qualifiedName`, `toKey` and `backend` of its queue; a full queue would need
 * Redis, so the stub is narrowed to the constructor's type here, once.
 */
function jobOn(queueName: string, name: string, data: Record<string, unknown> = {}): Job {
  const stub = {
    name: queueName,
    qualifiedName: `test:${queueName}`,
    toKey: (type: string) => `test:${queueName}:${type}`,
    backend: undefined,
  };
  return new Job(stub as unknown as JobQueue, name, data, {}, "job-1");
}

describe("createJobRouter", () => {
  it("when a job has a processor on its queue kind, then it gets the job and the queue's environment", async () => {
    const calls: [Job, string][] = [];
    const verify: JobProcessor = async (job, environment) => {
      calls.push([job, environment]);
      return "done";
    };
    const { logger } = memoryLogger();
    const route = createJobRouter({ handshake: { verify } }, "handshake", "env-a", logger);
    const job = jobOn("env-a.handshake", "verify", { environment: "env-evil" });

    expect(await route(job)).toBe("done");
    expect(calls).toEqual([[job, "env-a"]]);
    expect(calls[0]?.[0]).toBe(job);
  });

  it("when a job name has no processor, then UnrecoverableError is thrown and logged", async () => {
    const { logger, lines } = memoryLogger();
    const route = createJobRouter({ handshake: { verify: async () => "x" } }, "handshake", "env-a", logger);

    const error = await rejectionOf(route(jobOn("env-a.handshake", "unknown")));

    expect(error).toBeInstanceOf(UnrecoverableError);
    expect(String(error)).toContain('"unknown"');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 50, job: "unknown", queue: "env-a.handshake", msg: "no processor for job" }),
    ]);
  });

  it("when a job name is known only on another queue kind, then UnrecoverableError is thrown", async () => {
    let ran = false;
    const { logger } = memoryLogger();
    const table = {
      handshake: {
        verify: async () => {
          ran = true;
        },
      },
    };
    const route = createJobRouter(table, "rotation", "env-a", logger);

    expect(await rejectionOf(route(jobOn("env-a.rotation", "verify")))).toBeInstanceOf(UnrecoverableError);
    expect(ran).toBe(false);
  });

  it("when the queue kind has no table at all, then every job is unrecoverable", async () => {
    const { logger } = memoryLogger();
    const route = createJobRouter({}, "rotation", "env-a", logger);
    expect(await rejectionOf(route(jobOn("env-a.rotation", "refresh")))).toBeInstanceOf(UnrecoverableError);
  });

  it("when the processor fails, then its error reaches BullMQ unchanged (so it may retry)", async () => {
    const failure = new Error("provider timed out");
    const { logger } = memoryLogger();
    const route = createJobRouter(
      {
        rotation: {
          refresh: async () => {
            throw failure;
          },
        },
      },
      "rotation",
      "env-a",
      logger,
    );

    const error = await rejectionOf(route(jobOn("env-a.rotation", "refresh")));
    expect(error).toBe(failure);
    expect(error).not.toBeInstanceOf(UnrecoverableError);
  });

  // Known bug: the router looks processors up with `processors[job.name]`, so
  // names inherited from Object.prototype are taken for processors: "toString"
  // and "constructor" complete silently, the others fail with a retryable TypeError.
  it("when a job is named like an Object.prototype member, then it is unrecoverable too", async () => {
    const { logger } = memoryLogger();
    const route = createJobRouter({ rotation: {} }, "rotation", "env-a", logger);
    const notUnrecoverable: string[] = [];
    for (const name of ["toString", "constructor", "valueOf", "hasOwnProperty", "__proto__"]) {
      const outcome = await route(jobOn("env-a.rotation", name)).then(
        () => "completed",
        (error: unknown) => error,
      );
      if (!(outcome instanceof UnrecoverableError)) notUnrecoverable.push(name);
    }
    expect(notUnrecoverable).toEqual([]);
  });
});
