/**
 * SIGTERM under load: the API finishes the calls in flight and exits 0; the
 * worker finishes (or hands back) the handshakes it runs and exits 0, and a
 * new worker ends every account exactly once.
 */
import type { MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import {
  admin,
  codeOf,
  fmt,
  keyedEnvironment,
  type Outcome,
  type Stack,
  serving,
  sleep,
  startRoomkey,
  until,
} from "./harness.js";

const a = AccountService.method;
/** Ends that mean a call was cut off rather than answered. */
const cutOff = new Set([status.CANCELLED, status.INTERNAL, status.UNKNOWN, -1]);

export async function sigtermApi(stack: Stack): Promise<Outcome> {
  const config = stack.config({ ROOMKEY_SHUTDOWN_TIMEOUT_MS: "10000" });
  const api = await startRoomkey(config, "api");
  await until(async () => (await serving(api)) === true, 30_000);
  const calls: { started: number; ended?: number; code?: number }[] = [];
  let running = true;
  const lanes = Array.from({ length: 50 }, async () => {
    while (running) {
      const call = { started: Date.now() } as (typeof calls)[number];
      calls.push(call);
      call.code = await codeOf(api.accounts.unary(a.listAccounts, { pageSize: 20 }, admin(api, "development")));
      call.ended = Date.now();
      if (call.code !== status.OK) await sleep(20);
    }
  });
  await sleep(1_500);
  const signalled = Date.now();
  api.process.child.kill("SIGTERM");
  const exitCode = await api.process.exited;
  const exitMs = Date.now() - signalled;
  running = false;
  await Promise.all(lanes);
  api.close();
  const inFlight = calls.filter((c) => c.started <= signalled && (c.ended ?? Infinity) >= signalled);
  const histogram: Record<string, number> = {};
  for (const c of inFlight) {
    const name = status[c.code ?? -1] ?? String(c.code);
    histogram[name] = (histogram[name] ?? 0) + 1;
  }
  const cut = inFlight.filter((c) => cutOff.has(c.code ?? -1)).length;
  return {
    name: "SIGTERM of the API under load",
    ok: exitCode === 0 && cut === 0,
    figures: `${inFlight.length} calls in flight at SIGTERM ended ${JSON.stringify(histogram)} (cut off: ${cut}); exit code ${exitCode} after ${exitMs} ms`,
  };
}

type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;

export async function sigtermWorker(stack: Stack): Promise<Outcome> {
  const config = stack.config({ ROOMKEY_SHUTDOWN_TIMEOUT_MS: "10000", ROOMKEY_JOB_LOCK_MS: "5000" });
  const api = await startRoomkey(config, "api");
  await until(async () => (await serving(api)) === true, 30_000);
  const environment = "fault-worker";
  await keyedEnvironment(api, stack, environment);
  const first = await startRoomkey(config, "worker");
  await until(() => first.process.logged("serving environment"), 30_000);

  const events: WatchEvent[] = [];
  const watch = api.accounts.stream(a.watchAccounts, {}, admin(api, environment));
  watch.on("data", (event: WatchEvent) => events.push(event));
  watch.on("error", () => undefined);
  await sleep(300);

  stack.provider.always({ kind: "slow", delayMs: 1_500 });
  const before = stack.provider.calls();
  const ids: string[] = [];
  const keys: string[] = [];
  for (let i = 0; i < 20; i++) {
    const apiKey = `sk_worker_${i}_${Date.now()}`;
    stack.provider.allow(apiKey, { id: `remote-worker-${i}`, name: `worker ${i}` });
    keys.push(apiKey);
    const { account } = await api.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "worker", credential: { case: "apiKey", value: { key: apiKey } } },
      admin(api, environment),
    );
    ids.push(account?.id ?? "");
  }
  await until(() => stack.provider.calls() - before >= 10, 20_000);
  const signalled = Date.now();
  first.process.child.kill("SIGTERM");
  const exitCode = await first.process.exited;
  const exitMs = Date.now() - signalled;
  stack.provider.always(undefined);
  const second = await startRoomkey(config, "worker");
  const settled = await until(() => {
    const ended = new Set(
      events
        .filter((e) => e.account && [AccountStatus.ACTIVE, AccountStatus.FAILED].includes(e.account.status))
        .map((e) => e.account?.id),
    );
    return ids.every((id) => ended.has(id));
  }, 60_000);
  const transitions = new Map<string, number>();
  for (const e of events) {
    const id = e.account?.id ?? "";
    if (e.account && [AccountStatus.ACTIVE, AccountStatus.FAILED].includes(e.account.status)) {
      transitions.set(id, (transitions.get(id) ?? 0) + 1);
    }
  }
  const twice = [...transitions.values()].filter((n) => n !== 1).length;
  const mostCalls = Math.max(...keys.map((k) => stack.provider.callsWith(k)));
  watch.cancel();
  second.process.child.kill("SIGTERM");
  await second.process.exited;
  api.process.child.kill("SIGTERM");
  await api.process.exited;
  api.close();
  return {
    name: "SIGTERM of a worker mid-handshake",
    ok: exitCode === 0 && settled !== undefined && twice === 0 && mostCalls <= 2,
    figures:
      `worker exited ${exitCode} ${exitMs} ms after SIGTERM with handshakes running (provider answering in 1.5 s); ` +
      `a new worker ended all ${ids.length} accounts ${fmt(settled)} later, each exactly once (${twice} otherwise); ` +
      `at most ${mostCalls} provider calls per key`,
  };
}
