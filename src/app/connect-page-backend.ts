/**
 * What the hosted connect page (src/connect-page) asks of roomkey, answered
 * by the connect-session domain; and the HTTP port's page routes together.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ConnectPageDeps, ConnectPageSession } from "../connect-page/connect-page.js";
import type { AuditFacts } from "../domain/audit/audit-recorder.js";
import type { Clock } from "../domain/clock.js";
import type { ConnectSessionService } from "../domain/connect-sessions/connect-session-service.js";
import {
  type ConnectSession,
  type ConnectSessionView,
  inspectSessionSecret,
  sessionStatusAt,
} from "../domain/connect-sessions/connect-sessions.js";
import type { Environment } from "../domain/environments/environments.js";
import { RoomkeyError } from "../domain/errors.js";
import type { Principal } from "../rpc/call-context.js";
import { type FailureThrottle, peerKey } from "../rpc/failure-throttle.js";
import type { PageRoute } from "../rpc/http-adapter.js";

export interface ConnectPageBackendDeps {
  sessions: Pick<ConnectSessionService, "getOwn" | "completeCallback" | "sessionOfState" | "offered">;
  /** The session authenticator of the edge: the same verdicts as a call with the secret gets. */
  authenticate(secret: string, environment: string): Principal | Promise<Principal>;
  environments: { require(name: string): Environment | Promise<Environment> };
  clock: Clock;
  /** The environment's audit log: a connection the page completed is a call's entry, as over the API. */
  audit?: { record(environment: string, facts: AuditFacts): Promise<void> };
}

export function connectPageBackend(deps: ConnectPageBackendDeps): Omit<ConnectPageDeps, "logger"> {
  const { sessions } = deps;

  async function pageSession(
    environment: string,
    session: ConnectSession | ConnectSessionView,
  ): Promise<ConnectPageSession> {
    const integrations = await sessions.offered(environment, session);
    return {
      environment,
      sessionId: session.id,
      endUserName: session.endUser.displayName || session.endUser.id,
      integrations,
      allowedOrigins: [...session.allowedOrigins],
      ...(session.returnUrl ? { returnUrl: session.returnUrl } : {}),
      ...(session.reauthorize && session.accountId ? { reauthorizeAccountId: session.accountId } : {}),
      ...(session.accountId ? { accountId: session.accountId } : {}),
      status: sessionStatusAt(session, deps.clock.now().getTime()),
    };
  }

  return {
    async openSession(secret) {
      const shape = inspectSessionSecret(secret);
      if (shape.kind === "malformed") {
        throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "this link is not a connect session link");
      }
      const environment = shape.environment;
      await deps.environments.require(environment);
      const principal = await deps.authenticate(secret, environment);
      if (principal.kind !== "session") {
        throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "this link is not a connect session link");
      }
      const { session } = await sessions.getOwn(environment, principal.session);
      return pageSession(environment, session);
    },
    async completeCallback(params) {
      const { environment, session, account } = await sessions.completeCallback(params);
      // The page's request carries no request id or peer the page hands on: the entry says where it came from.
      await deps.audit?.record(environment, {
        actorKind: "connect_session",
        actorId: session.id,
        method: "roomkey.v1.AccountService/CompleteOAuthConnection",
        resource: account.id,
        requestId: "",
        outcome: "OK",
        reason: "",
        peer: "",
        details: { via: "connect_page" },
      });
      return { ...(await pageSession(environment, session)), accountId: account.id };
    },
    async sessionOfState(state) {
      const found = await sessions.sessionOfState(state);
      return found ? pageSession(found.environment, found.session) : undefined;
    },
  };
}

/**
 * The connect page's lookups cost a database read each (a made-up session
 * secret, a made-up state on the callback), and anyone may ask: each request
 * takes a token of the edge's failure throttle for its address, given back
 * when the answer is not a refusal. An address that keeps failing is answered
 * 429 without a lookup, as its API calls are. The page's assets are free.
 */
export function throttledPage(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  throttle: Pick<FailureThrottle, "enabled" | "take" | "refund" | "blockedFor">,
  isFree: (path: string) => boolean,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    const peer = peerKey(req.socket.remoteAddress);
    if (!throttle.enabled || peer === undefined || isFree(path)) {
      handle(req, res);
      return;
    }
    if (!throttle.take(peer)) {
      const wait = throttle.blockedFor(peer) ?? 1;
      res.writeHead(429, {
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
        "retry-after": String(wait),
      });
      res.end(`Too many failed attempts from this address; try again in ${wait} s.\n`);
      return;
    }
    res.once("finish", () => {
      if (res.statusCode < 400) throttle.refund(peer);
    });
    handle(req, res);
  };
}

/** Several page routes on one port: the first that matches a path serves it. */
export function pageRoutes(routes: readonly PageRoute[]): PageRoute {
  const routeFor = (req: IncomingMessage) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    return routes.find((route) => route.matches(path));
  };
  return {
    matches: (path) => routes.some((route) => route.matches(path)),
    handle(req: IncomingMessage, res: ServerResponse) {
      const route = routeFor(req);
      if (route) route.handle(req, res);
      else {
        res.writeHead(404);
        res.end();
      }
    },
  };
}
