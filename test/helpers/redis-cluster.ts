import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "ioredis";
import { freePort } from "./own-services.js";

/** A Redis Cluster of the test's own: its nodes' addresses, and what stops it. */
export interface OwnRedisCluster {
  /** `host:port` of every master, as REDIS_CLUSTER_NODES takes them. */
  nodes: string[];
  /** A cluster client of the test's own (closed by `dispose`). */
  client: Cluster;
  dispose(): Promise<void>;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/**
 * Starts `masters` redis-server processes in cluster mode on spare ports, in
 * a temporary directory, joins them with `redis-cli --cluster create` (no
 * replicas) and waits until every slot is served: a real Redis Cluster, which
 * answers MOVED for a key of another node's slot and CROSSSLOT for a script
 * or MULTI whose keys span slots.
 */
export async function ownRedisCluster(masters = 3): Promise<OwnRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), "roomkey-cluster-"));
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) ports.push(await freePort());
  const children: ChildProcess[] = ports.map((port) =>
    spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--cluster-node-timeout",
        "2000",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
      ],
      { stdio: "ignore" },
    ),
  );
  const dispose = async () => {
    await Promise.all(
      children.map((child) => {
        if (child.exitCode !== null) return Promise.resolve();
        const gone = new Promise((done) => child.once("exit", done));
        child.kill("SIGKILL");
        return gone;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const nodes = ports.map((port) => `127.0.0.1:${port}`);
    const ping = (port: number) => {
      try {
        return execFileSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" }).trim() === "PONG";
      } catch {
        return false;
      }
    };
    await until(() => ports.every(ping), 10_000, "the cluster's nodes answering");
    execFileSync("redis-cli", ["--cluster", "create", ...nodes, "--cluster-replicas", "0", "--cluster-yes"], {
      stdio: "ignore",
      timeout: 30_000,
    });
    const state = (port: number) =>
      execFileSync("redis-cli", ["-p", String(port), "cluster", "info"], { encoding: "utf8" });
    await until(
      () => ports.every((port) => /cluster_state:ok/.test(state(port)) && /cluster_slots_ok:16384/.test(state(port))),
      20_000,
      "the cluster serving every slot",
    );
    const client = new Cluster(
      ports.map((port) => ({ host: "127.0.0.1", port })),
      {},
    );
    await until(() => client.status === "ready", 10_000, "a cluster client ready");
    return {
      nodes,
      client,
      async dispose() {
        client.disconnect();
        await dispose();
      },
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}
