/**
 * The queue dashboard: Bull Board at `/admin/queues` on the HTTP port, behind
 * the admin key. Every environment's queues are listed as
 * `{<environment>}.<kind>` and grouped by environment (Bull Board's delimiter),
 * refreshed from the environment directory on each page or API request.
 * Read-only unless configured otherwise (`retry-clean`): then jobs can be
 * retried and removed (one, or all in a state), and nothing else: queues are
 * roomkey's to pause, empty and remove, never the dashboard's.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import express from "express";
import type { Logger } from "pino";
import { parseQueueName, type QueueKind, queueKinds } from "../queue/queue-names.js";
import type { FailureThrottle } from "../rpc/failure-throttle.js";
import { peerKey } from "../rpc/failure-throttle.js";

export const dashboardPath = "/admin/queues";

export type DashboardMode = "off" | "read-only" | "retry-clean";

export interface QueueDashboardDeps {
  mode: Exclude<DashboardMode, "off">;
  /** Whether a secret is the admin key (constant time). */
  isAdminKey(secret: string): boolean;
  /** The environments to show, without I/O. */
  environments(): string[];
  queue(environment: string, kind: QueueKind): Queue;
  /**
   * Wakes the queue's worker (src/queue/wake-index.ts): a job retried here is
   * back on an idle queue that nothing else would start a worker for.
   */
  wake(environment: string, kind: QueueKind): Promise<unknown>;
  /** Failed logins count against the address as failed API authentications do. */
  throttle?: FailureThrottle;
  logger: Logger;
}

const realm = 'Basic realm="roomkey admin (any user name, the admin key as password)", charset="UTF-8"';

/**
 * The secret a request offers: `Authorization: Bearer <admin key>` for
 * scripts, or Basic with the admin key as the password, which browsers ask
 * for and then send on every request under the path.
 */
export function offeredSecret(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(" ");
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === "bearer") return value || undefined;
  if (scheme !== "basic" || value.length > 4096) return undefined;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
}

/**
 * The only changes `retry-clean` lets through: retry or remove one job, or
 * every job of a queue in a state. Everything else that is not a read
 * (pause, resume, empty, obliterate, promote, add, ...) is refused before
 * Bull Board sees it.
 */
const allowedChanges = [
  /^\/api\/queues\/[^/]+\/(retry|clean)\/[a-z]+$/,
  /^\/api\/queues\/[^/]+\/[^/]+\/(retry|clean)$/,
];

/** A path segment decoded, or as it is when it is no valid percent-encoding (never a throw). */
function decodedOrNot(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function isRead(method: string | undefined): boolean {
  return method === "GET" || method === "HEAD";
}

/** A change must come from the dashboard's own page: the browser says so (Sec-Fetch-Site, Origin). */
function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin") return false;
  const origin = req.headers.origin;
  return origin === undefined || origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
}

/** Whether a request's path is the dashboard's. */
export function isDashboardPath(path: string): boolean {
  return path === dashboardPath || path.startsWith(`${dashboardPath}/`);
}

/** A request handler for the dashboard's paths: 401 without the admin key, 429 when the address failed too often. */
export function createQueueDashboard(deps: QueueDashboardDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const readOnlyMode = deps.mode === "read-only";
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(dashboardPath);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: readOnlyMode ? "roomkey (read-only)" : "roomkey",
        hideDocsLink: true,
      },
    },
  });
  const app = express();
  app.disable("x-powered-by");
  app.use(dashboardPath, serverAdapter.getRouter());

  /**
   * The queues shown. The board gets a new list only when they change: another environment, or
   * the same name deleted and created again (the registry then holds new Queue objects).
   */
  let shown: Queue[] = [];
  function showCurrentQueues(): void {
    const environments = [...deps.environments()].sort();
    const listed = environments.flatMap((environment) =>
      queueKinds.map((kind) => ({ environment, kind, queue: deps.queue(environment, kind) })),
    );
    const current = listed.map(({ queue }) => queue);
    if (current.length === shown.length && current.every((queue, i) => queue === shown[i])) return;
    shown = current;
    board.replaceQueues(
      listed.map(({ environment, kind, queue }) => {
        return new BullMQAdapter(queue, {
          readOnlyMode,
          allowRetries: !readOnlyMode,
          delimiter: ".",
          description: `${kind} jobs of the ${environment} environment`,
        });
      }),
    );
  }

  return (req, res) => {
    const secret = offeredSecret(req.headers.authorization);
    // The admin key is let in before the throttle, as on the API: an address (a proxy's, say) that
    // others used to guess does not lock the operator out.
    if (secret === undefined || !deps.isAdminKey(secret)) {
      const peer = peerKey(req.socket.remoteAddress);
      const blocked = deps.throttle?.blockedFor(peer);
      if (blocked !== undefined) {
        res.writeHead(429, { "retry-after": String(blocked), "content-type": "text/plain" });
        res.end("too many failed authentications from this address\n");
        return;
      }
      if (secret !== undefined) deps.throttle?.fail(peer);
      res.writeHead(401, { "www-authenticate": realm, "content-type": "text/plain" });
      res.end("the queue dashboard needs the admin key\n");
      return;
    }
    if (!isRead(req.method)) {
      const path = (req.url ?? "").split("?", 1)[0]?.slice(dashboardPath.length) ?? "";
      const allowed = !readOnlyMode && allowedChanges.some((pattern) => pattern.test(path)) && sameOrigin(req);
      if (!allowed) {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
        res.end(readOnlyMode ? "the queue dashboard is read-only\n" : "only retry and clean are allowed here\n");
        return;
      }
      const retried = /^\/api\/queues\/([^/]+)\/(?:retry\/[a-z]+|[^/]+\/retry)$/.exec(path)?.[1];
      const queue = retried === undefined ? undefined : parseQueueName(decodedOrNot(retried));
      if (queue) {
        res.once("finish", () => {
          if (res.statusCode >= 300) return;
          deps.wake(queue.environment, queue.kind).catch((error: unknown) => {
            deps.logger.warn({ err: error, queue: retried }, "could not wake the queue of a retried job");
          });
        });
      }
    }
    try {
      showCurrentQueues();
    } catch (error) {
      deps.logger.warn({ err: error }, "could not list queues for the dashboard");
    }
    app(req, res);
  };
}
