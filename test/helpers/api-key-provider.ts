import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What the provider does with the next calls, in order, before it answers normally again. */
export type ProviderBehaviour =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: unknown }
  | { kind: "slow"; delayMs: number }
  | { kind: "drop" };

/** The remote account a valid credential belongs to. */
export interface RemoteAccount {
  id: string;
  name: string;
}

/**
 * A small third-party API for tests, on 127.0.0.1: `GET /me` answers the
 * account of a known API key (bearer, `x-api-key` header or `api_key` query)
 * or of known basic credentials. It counts calls and can be told to fail,
 * to be slow, or to drop connections.
 */
export interface ApiKeyProvider {
  url: string;
  /** Calls received, in all and per credential. */
  calls(): number;
  callsWith(credential: string): number;
  /** Calls answered so far (a slow call counts once its answer is sent). */
  answered(): number;
  /** Makes `apiKey` (or `user:password` for basic) valid, for `account`. */
  allow(credential: string, account: RemoteAccount): void;
  /** The next calls get these, one each. */
  queue(...behaviours: ProviderBehaviour[]): void;
  /** Every call gets this until `always(undefined)`. */
  always(behaviour: ProviderBehaviour | undefined): void;
  /** Times of the calls, for backoff checks. */
  callTimes(): number[];
  stop(): Promise<void>;
}

function credentialOf(request: IncomingMessage, url: URL): string | undefined {
  const authorization = request.headers.authorization ?? "";
  if (authorization.startsWith("Bearer ")) return authorization.slice("Bearer ".length);
  if (authorization.startsWith("Basic ")) {
    return Buffer.from(authorization.slice("Basic ".length), "base64").toString("utf8");
  }
  const header = request.headers["x-api-key"];
  if (typeof header === "string") return header;
  return url.searchParams.get("api_key") ?? undefined;
}

export async function startApiKeyProvider(): Promise<ApiKeyProvider> {
  const accounts = new Map<string, RemoteAccount>();
  const perCredential = new Map<string, number>();
  const pending: ProviderBehaviour[] = [];
  const times: number[] = [];
  let standing: ProviderBehaviour | undefined;
  let total = 0;
  let answeredCalls = 0;

  function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  }

  const server = createServer(async (request, response) => {
    total++;
    response.on("finish", () => answeredCalls++);
    times.push(Date.now());
    const url = new URL(request.url ?? "/", "http://localhost");
    const credential = credentialOf(request, url);
    if (credential !== undefined) perCredential.set(credential, (perCredential.get(credential) ?? 0) + 1);
    const behaviour = pending.shift() ?? standing;
    if (behaviour?.kind === "drop") {
      request.socket.destroy();
      return;
    }
    if (behaviour?.kind === "slow") await new Promise((r) => setTimeout(r, behaviour.delayMs));
    if (behaviour?.kind === "status") {
      json(response, behaviour.status, behaviour.body ?? { error: `status ${behaviour.status}` }, behaviour.headers);
      return;
    }
    if (url.pathname !== "/me") {
      json(response, 404, { error: "not_found" });
      return;
    }
    const account = credential === undefined ? undefined : accounts.get(credential);
    if (!account) {
      json(response, 401, { error: "invalid_api_key", message: "The API key is not valid." });
      return;
    }
    json(response, 200, { data: { id: account.id, profile: { name: account.name } } });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    calls: () => total,
    callsWith: (credential) => perCredential.get(credential) ?? 0,
    answered: () => answeredCalls,
    allow: (credential, account) => accounts.set(credential, account),
    queue: (...behaviours) => pending.push(...behaviours),
    always: (behaviour) => {
      standing = behaviour;
    },
    callTimes: () => [...times],
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
