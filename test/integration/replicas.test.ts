import type { MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import {
  AccountService,
  AccountStatus,
  type WatchAccountsResponseSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { killSpawned, type RoomkeyProcess, spawnRoomkey } from "../helpers/child-process.js";
import {
  type GrpcClient,
  grpcClient,
  grpcDetails,
  grpcFailure,
  isServing,
  metadataFor,
  refusal,
} from "../helpers/clients.js";
import { apiKeyIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { freePort } from "../helpers/own-services.js";
import { dropDeployment, eventually, testConfig } from "../helpers/server.js";

/**
 * Two API processes and three worker processes of one deployment, as an
 * operator runs them: environments shared out among the workers, calls spread
 * over the APIs, and a worker killed.
 */
const e = EnvironmentService.method;
const t = TokenService.method;
const a = AccountService.method;
type WatchEvent = MessageShape<typeof WatchAccountsResponseSchema>;

const leaseMs = 3_000;
const lockMs = 3_000;

let provider: ApiKeyProvider;
let config: Config;
const apis: { process: RoomkeyProcess; address: string }[] = [];
const workers: RoomkeyProcess[] = [];

/** The environments each worker serves now, from its log lines in order. */
function servedBy(worker: RoomkeyProcess): Set<string> {
  const served = new Set<string>();
  for (const line of worker.lines) {
    if (typeof line.environment !== "string") continue;
    if (line.msg === "serving environment") served.add(line.environment);
    if (line.msg === "stopped serving environment") served.delete(line.environment);
  }
  return served;
}

function alive(): RoomkeyProcess[] {
  return workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
}

/** Each environment served by exactly one live worker. */
function servedOnce(names: readonly string[]): boolean {
  const sets = alive().map(servedBy);
  return names.every((name) => sets.filter((s) => s.has(name)).length === 1);
}

/** A client of one service that sends each call to the next API process in turn. */
function spread<S extends Parameters<typeof grpcClient>[0]>(service: S) {
  const clients = apis.map((api) => grpcClient(service, api.address)) as GrpcClient<S>[];
  let next = 0;
  return {
    unary: ((...args: Parameters<GrpcClient<S>["unary"]>) => {
      const client = clients[next++ % clients.length] as GrpcClient<S>;
      return client.unary(...args);
    }) as GrpcClient<S>["unary"],
    each: clients,
    close: () => {
      for (const client of clients) client.close();
    },
  };
}

const admin = (environment: string) => metadataFor(environment, config.ROOMKEY_ADMIN_KEY);

beforeAll(async () => {
  provider = await startApiKeyProvider();
  config = testConfig({
    ROOMKEY_WORKER_LEASE_MS: String(leaseMs),
    ROOMKEY_JOB_LOCK_MS: String(lockMs),
    ROOMKEY_PROVIDER_RETRY_MS: "500",
  });
  for (let i = 0; i < 2; i++) {
    const grpcPort = await freePort();
    const process = spawnRoomkey(
      { ...config, ROOMKEY_GRPC_PORT: grpcPort, ROOMKEY_HTTP_PORT: await freePort() } as Config,
      "api",
    );
    apis.push({ process, address: `127.0.0.1:${grpcPort}` });
  }
  for (let i = 0; i < 3; i++) workers.push(spawnRoomkey(config, "worker"));
  for (const api of apis) await eventually(() => isServing(api.address), 60_000, "an API process serving");
  await eventually(() => servedOnce(["development", "staging", "production"]), 60_000, "the defaults served");
}, 90_000);

afterAll(async () => {
  await killSpawned();
  await provider?.stop();
  if (config) await dropDeployment(config);
});

describe("two API and three worker processes", () => {
  const created: string[] = [];

  it("when environments are created through one API, then each is served by exactly one worker and known to both APIs within 1 s", async () => {
    const environments = spread(EnvironmentService);
    try {
      const timings: number[] = [];
      for (let i = 0; i < 27; i++) {
        const name = randomEnvironmentName();
        const [first, second] = environments.each;
        if (!first || !second) throw new Error("two API processes");
        const started = Date.now();
        await first.unary(e.createEnvironment, {}, admin(name));
        // Known to the other API (it answers for it) and served by one worker.
        await eventually(
          async () => {
            const answer = await second.unary(e.getEnvironment, {}, admin(name)).catch(() => undefined);
            return answer?.environment?.name === name && servedOnce([name]);
          },
          5_000,
          `${name} served everywhere`,
        );
        timings.push(Date.now() - started);
        created.push(name);
      }
      const all = ["development", "staging", "production", ...created];
      await eventually(() => servedOnce(all), 10_000, "every environment served by exactly one worker");
      const shares = alive().map((w) => servedBy(w).size);
      timings.sort((x, y) => x - y);
      console.log(
        `${all.length} environments over ${alive().length} workers: ${shares.join(" + ")}; a new environment was served everywhere within ${timings[0]}..${timings.at(-1)} ms (median ${timings[Math.floor(timings.length / 2)]} ms) of its CreateEnvironment`,
      );
      expect(shares.every((n) => n > 0)).toBe(true);
      expect(timings.at(-1)).toBeLessThan(1_000);
    } finally {
      environments.close();
    }
  });

  it("when a client spreads its calls over both APIs, then a staging token opens staging only, revocation holds on both, and a development account exists only in development", async () => {
    const tokens = spread(TokenService);
    const environments = spread(EnvironmentService);
    const accounts = spread(AccountService);
    try {
      const bearer = (environment: string, secret: string) => metadataFor(environment, secret);
      const made = await tokens.unary(
        t.createToken,
        { name: "ci", scopes: ["environment:read", "accounts:read"] },
        admin("staging"),
      );
      const secret = made.secret;
      // Each API, in turn, lets it into staging and nowhere else.
      for (let i = 0; i < 4; i++) {
        expect((await environments.unary(e.getEnvironment, {}, bearer("staging", secret))).environment?.name).toBe(
          "staging",
        );
        const refused = await grpcFailure(environments.unary(e.getEnvironment, {}, bearer("development", secret)));
        expect(refused.code).toBe(status.PERMISSION_DENIED);
        expect(grpcDetails(refused).errorInfo?.reason).toBe("TOKEN_WRONG_ENVIRONMENT");
      }
      await tokens.unary(t.revokeToken, { id: made.token?.id ?? "" }, admin("staging"));
      for (const client of environments.each) {
        await eventually(
          async () =>
            (await refusal(client.unary(e.getEnvironment, {}, bearer("staging", secret))))?.code ===
            status.UNAUTHENTICATED,
          1_000,
          "the revoked token refused by each API",
        );
      }

      await environments.unary(
        e.putIntegration,
        { integration: apiKeyIntegration("keyed", provider.url) },
        admin("development"),
      );
      provider.allow("sk_seed", { id: "remote-seed", name: "Seed" });
      const { account } = await accounts.unary(
        a.connectAccount,
        { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key: "sk_seed" } } },
        admin("development"),
      );
      const id = account?.id ?? "";
      await eventually(
        async () =>
          (await accounts.unary(a.getAccount, { id }, admin("development"))).account?.status === AccountStatus.ACTIVE,
        10_000,
        "the account ACTIVE",
      );
      for (let i = 0; i < 2; i++) {
        const missing = await grpcFailure(accounts.unary(a.getAccount, { id }, admin("staging")));
        expect(missing.code).toBe(status.NOT_FOUND);
        expect((await accounts.unary(a.listAccounts, {}, admin("staging"))).accounts).toEqual([]);
        expect((await accounts.unary(a.listAccounts, {}, admin("development"))).accounts.map((x) => x.id)).toContain(
          id,
        );
      }
    } finally {
      tokens.close();
      environments.close();
      accounts.close();
    }
  });

  it("when a worker is SIGKILLed mid-handshakes, then the others take its environments' jobs within 10 s, none lost and none run twice to a visible effect", async () => {
    const environments = spread(EnvironmentService);
    const accounts = spread(AccountService);
    const [watching] = accounts.each;
    if (!watching) throw new Error("an API process");
    try {
      const victim = alive().find((w) => servedBy(w).size > 0);
      if (!victim) throw new Error("a worker serving something");
      const environment = [...servedBy(victim)].sort()[0] ?? "";
      await environments.unary(
        e.putIntegration,
        { integration: apiKeyIntegration("keyed", provider.url) },
        admin(environment),
      );
      const watch = watching.stream(a.watchAccounts, {}, admin(environment));
      const events: WatchEvent[] = [];
      watch.on("data", (event: WatchEvent) => events.push(event));
      watch.on("error", () => undefined);
      await new Promise((r) => setTimeout(r, 500));

      // Each handshake takes 1.5 s at the provider: some run, the others wait, when the worker dies.
      provider.always({ kind: "slow", delayMs: 1_500 });
      const keys = Array.from({ length: 15 }, (_, i) => `sk_kill_${i}_${Math.random().toString(36).slice(2)}`);
      const ids: string[] = [];
      for (const [i, key] of keys.entries()) {
        provider.allow(key, { id: `remote-kill-${i}`, name: `Killed ${i}` });
        const { account } = await accounts.unary(
          a.connectAccount,
          { integration: "keyed", tenantId: "t", credential: { case: "apiKey", value: { key } } },
          admin(environment),
        );
        ids.push(account?.id ?? "");
      }
      await eventually(() => keys.some((key) => provider.callsWith(key) > 0), 10_000, "a handshake at the provider");
      provider.always(undefined);
      const killed = Date.now();
      victim.child.kill("SIGKILL");
      await victim.exited;

      const settled = await eventually(
        async () => {
          const { accounts: listed } = await accounts.unary(
            a.listAccounts,
            { status: AccountStatus.CONNECTING, pageSize: 1 },
            admin(environment),
          );
          return listed.length === 0;
        },
        30_000,
        "every account leaves CONNECTING",
      );
      const after = provider.callTimes().filter((time) => time >= killed);
      const firstCallMs = Math.min(...after) - killed;
      const takenBy = alive().find((w) => servedBy(w).has(environment));
      for (const id of ids) {
        expect((await accounts.unary(a.getAccount, { id }, admin(environment))).account?.status).toBe(
          AccountStatus.ACTIVE,
        );
      }
      // Visible effects: each account turned ACTIVE exactly once.
      await eventually(
        () => ids.every((id) => events.some((x) => x.account?.id === id && x.account?.status === AccountStatus.ACTIVE)),
        5_000,
        "the watcher saw every account ACTIVE",
      );
      for (const id of ids) {
        expect(events.filter((x) => x.account?.id === id && x.account?.status === AccountStatus.ACTIVE)).toHaveLength(
          1,
        );
      }
      watch.cancel();
      const all = [
        "development",
        "staging",
        "production",
        ...(await environments.unary(e.listEnvironments, { pageSize: 100 }, admin("development"))).environments.map(
          (x) => x.name,
        ),
      ];
      await eventually(() => servedOnce([...new Set(all)]), 10_000, "every environment served by one of the two left");
      console.log(
        `worker killed with ${ids.length} handshakes of ${environment} running or waiting: another worker (${takenBy ? "found" : "none"}) reached the provider ${firstCallMs} ms after the kill, all ACTIVE ${settled} ms after it (lease ${leaseMs} ms, lock ${lockMs} ms); each account turned ACTIVE once`,
      );
      expect(takenBy).toBeDefined();
      expect(firstCallMs).toBeLessThan(10_000);
    } finally {
      environments.close();
      accounts.close();
    }
  }, 60_000);
});
