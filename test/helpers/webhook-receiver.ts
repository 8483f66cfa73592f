import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request a receiver got, as it came. */
export interface ReceivedDelivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** The status it answered (0: it never answered). */
  answered: number;
}

/** What a path answers: a status, or `hang` (never answers; the sender times out or goes away). */
export type Answer = number | "hang";

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>/<path>` */
  url(path: string): string;
  /** Answers for `path`, in order; past the last, the last repeats. 204 by default. */
  answer(path: string, ...answers: Answer[]): void;
  received(path?: string): ReceivedDelivery[];
  /** The parsed bodies received on `path`. */
  events(path: string): { id: string; type: string; environment: string; data: Record<string, unknown> }[];
  stop(): Promise<void>;
}

/** A local HTTP server that records every webhook delivery and answers as a test says. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedDelivery[] = [];
  const plans = new Map<string, Answer[]>();
  const hanging = new Set<import("node:http").ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "/").slice(1);
      const plan = plans.get(path) ?? [];
      const answer = plan.length > 1 ? (plan.shift() as Answer) : (plan[0] ?? 204);
      const delivery: ReceivedDelivery = {
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
        answered: answer === "hang" ? 0 : answer,
      };
      received.push(delivery);
      if (answer === "hang") {
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      res.writeHead(answer, { "content-type": "text/plain" }).end(answer < 300 ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}/${path}`,
    answer: (path, ...answers) => plans.set(path, answers),
    received: (path) => (path === undefined ? [...received] : received.filter((r) => r.path === path)),
    events: (path) => received.filter((r) => r.path === path).map((r) => JSON.parse(r.body)),
    async stop() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Checks a delivery as the Standard Webhooks spec says a receiver must,
 * written apart from roomkey's signing code: which of `secrets` signed it
 * (indexes), or an empty list.
 */
export function signersOf(delivery: Pick<ReceivedDelivery, "headers" | "body">, secrets: readonly string[]): number[] {
  const id = String(delivery.headers["webhook-id"] ?? "");
  const timestamp = String(delivery.headers["webhook-timestamp"] ?? "");
  const signatures = String(delivery.headers["webhook-signature"] ?? "")
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .map((s) => Buffer.from(s.slice(3), "base64"));
  return secrets.flatMap((secret, index) => {
    const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
    const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${delivery.body}`).digest();
    return signatures.some((s) => s.length === expected.length && timingSafeEqual(s, expected)) ? [index] : [];
  });
}
