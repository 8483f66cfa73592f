import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the endpoint received: its form fields and how the client authenticated. */
export interface RevocationRequest {
  path: string;
  form: Record<string, string>;
  /** The `authorization` header, or "". */
  authorization: string;
  contentType: string;
}

/**
 * A token revocation endpoint (RFC 7009) on 127.0.0.1 for tests. It keeps
 * every request, answers 200 with an empty body, and can be told to answer
 * other statuses first (a provider that is down). oauth2-mock-server has a
 * `/revoke` too, but it does not parse the form, so a test could not see what
 * was sent.
 */
export interface RevocationEndpoint {
  /** `http://127.0.0.1:<port>/revoke` */
  url: string;
  requests(): RevocationRequest[];
  /** The next requests get these statuses, one each, before it answers 200 again. */
  queue(...statuses: number[]): void;
  /** Drops the statuses still queued: it answers 200 from now on. */
  clearQueue(): void;
  stop(): Promise<void>;
}

export async function startRevocationEndpoint(): Promise<RevocationEndpoint> {
  const received: RevocationRequest[] = [];
  const statuses: number[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({
        path: request.url ?? "",
        form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))),
        authorization: request.headers.authorization ?? "",
        contentType: request.headers["content-type"] ?? "",
      });
      const status = statuses.shift() ?? 200;
      if (status === 200) {
        response.writeHead(200).end();
        return;
      }
      response
        .writeHead(status, { "content-type": "application/json" })
        .end(JSON.stringify({ error: status >= 500 ? "temporarily_unavailable" : "invalid_request" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/revoke`,
    requests: () => received.map((r) => ({ ...r, form: { ...r.form } })),
    queue: (...more) => statuses.push(...more),
    clearQueue: () => {
      statuses.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
