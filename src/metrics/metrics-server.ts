import http from "node:http";
import type { Logger } from "pino";
import { listen } from "../rpc/servers.js";
import type { Metrics } from "./metrics.js";

export const metricsPath = "/metrics";

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on a port of its own, in
 * every role. It holds no secret and takes no input, so it asks for no
 * credentials: keep the port on the internal network (or turn it off with
 * ROOMKEY_METRICS_PORT=off). Queue counts are read at most once a second
 * (metrics.ts), so scraping in a loop costs Redis little.
 */
export async function startMetricsServer(
  metrics: Pick<Metrics, "scrape">,
  options: { host: string; port: number; logger: Logger },
): Promise<MetricsServer> {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== metricsPath) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: metrics are at ${metricsPath}\n`);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("use GET\n");
      return;
    }
    metrics.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (error: unknown) => {
        options.logger.warn({ err: error }, "metrics scrape failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics scrape failed\n");
      },
    );
  });
  server.maxRequestsPerSocket = 100;
  return {
    port: await listen(server, options.port, options.host),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
