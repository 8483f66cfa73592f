import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An HTTP forwarder on 127.0.0.1 in front of another test server (such as the
 * OAuth provider's token endpoint) that can hold requests before passing them
 * on: the way to keep a provider call in flight while a test acts.
 */
export interface DelayingForwarder {
  url: string;
  /** The next `count` requests wait `delayMs` before they are forwarded. */
  delayNext(delayMs: number, count?: number): void;
  /** Requests received, and requests whose answer was sent back. */
  received(): number;
  answered(): number;
  stop(): Promise<void>;
}

/** Headers that belong to one connection, not to the request: fetch sets its own. */
const hopByHop = new Set(["host", "connection", "content-length", "transfer-encoding", "keep-alive"]);

export async function startDelayingForwarder(target: string): Promise<DelayingForwarder> {
  const delays: number[] = [];
  let received = 0;
  let answered = 0;
  const server = createServer(async (request, response) => {
    received++;
    const delayMs = delays.shift() ?? 0;
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const headers = Object.fromEntries(
      Object.entries(request.headers).filter(
        (entry): entry is [string, string] => typeof entry[1] === "string" && !hopByHop.has(entry[0]),
      ),
    );
    try {
      const upstream = await fetch(`${target}${request.url ?? "/"}`, {
        method: request.method ?? "GET",
        headers,
        ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
      });
      const body = Buffer.from(await upstream.arrayBuffer());
      response.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "text/plain" });
      response.end(body);
    } catch {
      response.writeHead(502);
      response.end();
    }
    answered++;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    delayNext(delayMs, count = 1) {
      for (let i = 0; i < count; i++) delays.push(delayMs);
    },
    received: () => received,
    answered: () => answered,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
