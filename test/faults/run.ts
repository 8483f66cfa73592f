/**
 * The fault suite: roomkey (the compiled build, as a child process) on a
 * Redis and a FerretDB of its own, on spare ports, under faults and abuse.
 * One line per check: PASS or FAIL (correctness: the process stayed up,
 * nothing was lost or duplicated, no answer was INTERNAL), whether its speed
 * or memory target was met, and its figures. Exits 1 if any check failed.
 *
 *   npm run test:faults                   every check
 *   npm run test:faults -- fuzz flood     checks whose name contains a word
 */
import { cpus } from "node:os";
import { Redis } from "ioredis";
import { preAuthMemory, tokenFlood } from "./abuse.js";
import { ferretKilled, redisFlushed, redisKilled } from "./backends.js";
import { fuzz } from "./fuzz.js";
import { type Outcome, type Roomkey, type Stack, serving, startRoomkey, startStack, until } from "./harness.js";
import { sigtermApi, sigtermWorker } from "./sigterm.js";
import { streamChurn } from "./streams.js";

const words = process.argv.slice(2);

interface Check {
  name: string;
  run(roomkey: Roomkey, stack: Stack): Promise<Outcome>;
}

const checks: Check[] = [
  { name: "fuzz", run: (roomkey) => fuzz(roomkey) },
  { name: "pre-authentication memory", run: (roomkey) => preAuthMemory(roomkey) },
  { name: "unknown-token flood", run: (roomkey) => tokenFlood(roomkey) },
  { name: "stream churn", run: (roomkey) => streamChurn(roomkey) },
  {
    name: "redis flushall",
    run: async (roomkey, stack) => {
      const client = new Redis(stack.redis.url);
      try {
        return await redisFlushed(roomkey, stack, () => client.flushall());
      } finally {
        client.disconnect();
      }
    },
  },
  { name: "redis sigkill", run: redisKilled },
  { name: "ferretdb sigkill", run: ferretKilled },
  { name: "sigterm api", run: (_roomkey, stack) => sigtermApi(stack) },
  { name: "sigterm worker", run: (_roomkey, stack) => sigtermWorker(stack) },
];

function print(outcome: Outcome, seconds: number): void {
  const target = outcome.target === undefined ? "" : outcome.target ? " [target met]" : " [target MISSED]";
  console.log(`${outcome.ok ? "PASS" : "FAIL"}${target} ${outcome.name} (${seconds.toFixed(0)} s): ${outcome.figures}`);
}

const selected = checks.filter((c) => words.length === 0 || words.some((w) => c.name.includes(w)));
console.log(
  `fault suite, ${new Date().toISOString()}: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}; ` +
    `checks: ${selected.map((c) => c.name).join(", ")}`,
);
const suiteStarted = Date.now();
const stack = await startStack();
let failed = 0;
let main: Roomkey | undefined;
try {
  main = await startRoomkey(
    stack.config({
      ROOMKEY_PROVIDER_RETRY_MS: "200",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "5000",
      ROOMKEY_WORKER_LEASE_MS: "3000",
      ROOMKEY_JOB_LOCK_MS: "5000",
    }),
    "all",
    // Memory is read from outside, over the inspector, after gc() (test/helpers/inspector.ts).
    ["--expose-gc", "--inspect=127.0.0.1:0"],
  );
  if ((await until(async () => (await serving(main as Roomkey)) === true, 60_000)) === undefined) {
    throw new Error("roomkey never reported SERVING");
  }
  for (const check of selected) {
    const started = Date.now();
    let outcome: Outcome;
    try {
      outcome = await check.run(main, stack);
    } catch (error) {
      outcome = { name: check.name, ok: false, figures: `the check itself failed: ${(error as Error).stack ?? error}` };
    }
    if (!outcome.ok) failed++;
    print(outcome, (Date.now() - started) / 1000);
  }
} finally {
  if (main) {
    main.process.child.kill("SIGTERM");
    await main.process.exited;
    main.close();
  }
  await stack.stop();
}
console.log(
  `${selected.length - failed} of ${selected.length} checks passed in ${((Date.now() - suiteStarted) / 1000).toFixed(0)} s`,
);
process.exit(failed === 0 ? 0 : 1);
