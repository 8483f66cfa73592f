/**
 * The hosted connect page on the HTTP port: where an end user, holding a
 * connect session's URL (`/connect?session=rkcs_…`), picks an integration and
 * connects it, and where OAuth providers send them back
 * (`/connect/oauth/callback`). Plain server-rendered HTML plus one small
 * script and one stylesheet served from `/connect/assets/`; no inline script
 * or style, so the Content-Security-Policy can be strict.
 *
 * The session secret never appears in what the server renders: the script
 * reads it from the URL, keeps it in `sessionStorage` and strips it from the
 * address bar. Every page that carries a session is `no-store`, sent with
 * `Referrer-Policy: no-referrer`, and may be framed only by the session's
 * allowed origins.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { connectPagePath, oauthCallbackPath } from "../domain/connect-sessions/connect-session-service.js";
import { type ErrorKind, RoomkeyError } from "../domain/errors.js";
import { connectScript, connectStyle } from "./connect-assets.js";
import {
  type CallbackView,
  type PageView,
  renderCallbackPage,
  renderConnectPage,
  renderErrorPage,
  renderResumePage,
} from "./connect-html.js";

export { connectPagePath, oauthCallbackPath };
export const connectAssetsPath = "/connect/assets/";

/** A session as the page shows it (what the page renders is exactly this). */
export type ConnectPageSession = PageView;

export interface ConnectPageDeps {
  /**
   * The session a secret opens (its environment is inside the secret). Throws
   * a RoomkeyError (`kind` unauthenticated, permission_denied,
   * failed_precondition, invalid_argument…, `reason` such as
   * CONNECT_SESSION_EXPIRED, CREDENTIALS_INVALID) when it opens none.
   */
  openSession(secret: string): Promise<ConnectPageSession>;
  /**
   * The provider's redirect with a code: completes the OAuth connection the
   * state began (a worker then exchanges the code). Throws a RoomkeyError
   * (reason OAUTH_ISSUER_MISMATCH for an `iss` mix-up, INVALID_REQUEST for an
   * unknown/expired/used state, CONNECT_SESSION_*).
   */
  completeCallback(params: {
    state: string;
    code: string;
    iss?: string;
  }): Promise<ConnectPageSession & { accountId: string }>;
  /**
   * The session whose OAuth attempt a state belongs to, without completing
   * anything (for a provider's error redirect, e.g. error=access_denied);
   * undefined when the state is unknown.
   */
  sessionOfState(state: string): Promise<ConnectPageSession | undefined>;
  logger: Logger;
}

/** Whether a request's path belongs to the connect page (the page, its callback, its assets, or a 404 under them). */
export function isConnectPath(path: string): boolean {
  return path === connectPagePath || path.startsWith(`${connectPagePath}/`);
}

const assets: ReadonlyMap<string, { body: string; contentType: string }> = new Map([
  [`${connectAssetsPath}connect.js`, { body: connectScript, contentType: "text/javascript; charset=utf-8" }],
  [`${connectAssetsPath}connect.css`, { body: connectStyle, contentType: "text/css; charset=utf-8" }],
]);

/** The longest query string read: a session secret, an OAuth code and state fit many times over. */
const maxQueryLength = 8192;
/** The most of a provider's `error_description` shown: it is the provider's text, not roomkey's. */
const maxProviderText = 200;
/** What a session id looks like (the resume page takes one from the URL). */
const sessionIdPattern = /^cs_[0-9A-Za-z]{22}$/;

/**
 * The Content-Security-Policy of every response: only roomkey's own script,
 * style and API; framed only by the session's allowed origins, or by no one.
 */
export function contentSecurityPolicy(frameAncestors: readonly string[]): string {
  const ancestors = frameAncestors.length > 0 ? frameAncestors.join(" ") : "'none'";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "base-uri 'none'",
    `frame-ancestors ${ancestors}`,
  ].join("; ");
}

/** An allowed origin as it may go into a header: scheme, host and port, nothing that could end the directive. */
function safeOrigins(origins: readonly string[]): string[] {
  return origins.filter((origin) => /^https?:\/\/[a-z0-9.-]+(:[0-9]{1,5})?$/.test(origin));
}

function securityHeaders(frameAncestors: readonly string[], cache: "no-store" | "public"): Record<string, string> {
  return {
    "content-security-policy": contentSecurityPolicy(safeOrigins(frameAncestors)),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": cache === "no-store" ? "no-store" : "public, max-age=300",
    ...(cache === "no-store" ? { pragma: "no-cache" } : {}),
  };
}

const statusOfKind: Readonly<Record<ErrorKind, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  aborted: 409,
  resource_exhausted: 429,
  unavailable: 503,
  unimplemented: 501,
};

/** The HTTP status of a refusal: a session that ended is 410 Gone. */
export function httpStatusOf(error: RoomkeyError): number {
  if (
    error.reason === "CONNECT_SESSION_EXPIRED" ||
    error.reason === "CONNECT_SESSION_REVOKED" ||
    error.reason === "CONNECT_SESSION_SPENT"
  ) {
    return 410;
  }
  return statusOfKind[error.kind] ?? 500;
}

function titleOf(status: number): string {
  switch (status) {
    case 400:
      return "This link is not valid";
    case 401:
    case 403:
      return "This connect link is not valid";
    case 404:
      return "Not found";
    case 410:
      return "This connect link has ended";
    case 429:
      return "Too many attempts";
    case 503:
      return "Temporarily unavailable";
    default:
      return "Something went wrong";
  }
}

/**
 * A request handler for the connect page's paths. Only GET and HEAD; it never
 * throws, and logs a fault without the query string (it holds the secret).
 */
export function createConnectPage(deps: ConnectPageDeps): (req: IncomingMessage, res: ServerResponse) => void {
  function send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string>,
  ): void {
    const bytes = Buffer.from(body, "utf8");
    res.writeHead(status, { ...headers, "content-length": String(bytes.length) });
    res.end(req.method === "HEAD" ? undefined : bytes);
  }

  function html(req: IncomingMessage, res: ServerResponse, status: number, page: string, frameAncestors: string[]) {
    send(req, res, status, page, {
      "content-type": "text/html; charset=utf-8",
      ...securityHeaders(frameAncestors, "no-store"),
    });
  }

  function errorPage(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
    html(req, res, status, renderErrorPage(titleOf(status), message), []);
  }

  function refusal(req: IncomingMessage, res: ServerResponse, error: unknown, path: string): void {
    if (error instanceof RoomkeyError) {
      const status = httpStatusOf(error);
      if (status >= 500) deps.logger.warn({ err: error, path }, "the connect page could not serve a request");
      errorPage(req, res, status, error.message);
      return;
    }
    deps.logger.error({ err: error, path }, "the connect page failed");
    errorPage(req, res, 500, "The page could not be shown. Try again in a moment.");
  }

  async function connect(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const secret = query.get("session");
    if (!secret) {
      const resume = query.get("resume");
      if (resume && sessionIdPattern.test(resume)) {
        html(req, res, 200, renderResumePage(resume), []);
        return;
      }
      errorPage(req, res, 400, "The link has no connect session. Start again from the app that sent you here.");
      return;
    }
    const session = await deps.openSession(secret);
    if (session.status === "expired" || session.status === "revoked") {
      const message =
        session.status === "expired" ? "The connect session has expired." : "The connect session was revoked.";
      errorPage(req, res, 410, `${message} Start again from the app that sent you here.`);
      return;
    }
    html(req, res, 200, renderConnectPage(session), session.allowedOrigins);
  }

  async function callback(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const state = query.get("state") ?? "";
    const code = query.get("code") ?? "";
    const providerError = query.get("error");
    if (!state) {
      errorPage(req, res, 400, "The provider's answer has no state: start again from the app that sent you here.");
      return;
    }
    if (providerError !== null || !code) {
      const described = (query.get("error_description") ?? "").slice(0, maxProviderText);
      const reason = providerError ?? "no authorization code";
      const text =
        providerError === "access_denied"
          ? "The connection was not authorized."
          : `The provider did not authorize the connection (${reason.slice(0, 64)}${described ? `: ${described}` : ""}).`;
      const session = await deps.sessionOfState(state);
      if (!session) {
        errorPage(req, res, 400, text);
        return;
      }
      const view: CallbackView = { ...session, error: text };
      html(req, res, 200, renderCallbackPage(view), session.allowedOrigins);
      return;
    }
    const iss = query.get("iss") ?? undefined;
    let completed: ConnectPageSession & { accountId: string };
    try {
      completed = await deps.completeCallback(iss === undefined ? { state, code } : { state, code, iss });
    } catch (error) {
      if (!(error instanceof RoomkeyError)) throw error;
      // The attempt failed, but its session may still be known: the page ends it as FAILED for the platform.
      const session = await deps.sessionOfState(state).catch(() => undefined);
      if (!session || session.status === "expired" || session.status === "revoked") throw error;
      const view: CallbackView = { ...session, error: error.message };
      html(req, res, httpStatusOf(error), renderCallbackPage(view), session.allowedOrigins);
      return;
    }
    html(req, res, 200, renderCallbackPage(completed), completed.allowedOrigins);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(req, res, 405, "only GET and HEAD are allowed here\n", {
        allow: "GET, HEAD",
        "content-type": "text/plain; charset=utf-8",
        ...securityHeaders([], "no-store"),
      });
      return;
    }
    const asset = assets.get(path);
    if (asset) {
      send(req, res, 200, asset.body, { "content-type": asset.contentType, ...securityHeaders([], "public") });
      return;
    }
    if (path === connectPagePath) return connect(req, res, query);
    if (path === oauthCallbackPath) return callback(req, res, query);
    errorPage(req, res, 404, "There is no page here.");
  }

  return (req, res) => {
    const url = req.url ?? "/";
    const mark = url.indexOf("?");
    const path = mark < 0 ? url : url.slice(0, mark);
    const rawQuery = mark < 0 ? "" : url.slice(mark + 1);
    const fail = (error: unknown) => {
      if (res.headersSent) {
        deps.logger.error({ err: error, path }, "the connect page failed while answering");
        res.destroy();
        return;
      }
      refusal(req, res, error, path);
    };
    try {
      if (rawQuery.length > maxQueryLength) {
        errorPage(req, res, 414, "The link is too long.");
        return;
      }
      handle(req, res, path, new URLSearchParams(rawQuery)).catch(fail);
    } catch (error) {
      fail(error);
    }
  };
}
