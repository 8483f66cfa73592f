import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectScript } from "../../src/connect-page/connect-assets.js";
import {
  type ConnectPageDeps,
  type ConnectPageSession,
  connectAssetsPath,
  connectPagePath,
  createConnectPage,
  isConnectPath,
  oauthCallbackPath,
} from "../../src/connect-page/connect-page.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { createLogger } from "../../src/logger.js";

const secret = "rkcs_development_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3t0000";
const expiredSecret = "rkcs_development_Expired0000000000000000000000000000000";
const faultySecret = "rkcs_development_Faulty00000000000000000000000000000000";
const platform = "https://app.example.com";

function session(overrides: Partial<ConnectPageSession> = {}): ConnectPageSession {
  return {
    environment: "development",
    sessionId: "cs_0Nm2bqZp8tQy4rW1xKs9Lf",
    endUserName: "Ada Lovelace",
    integrations: [
      { name: "keyed", displayName: "Keyed CRM", authType: "api_key" },
      { name: "crm", displayName: "Hub <script>alert(1)</script>", authType: "oauth2" },
    ],
    allowedOrigins: [platform, "http://localhost:3000"],
    status: "open",
    ...overrides,
  };
}

let current: ConnectPageSession;
let completed: { state: string; code: string; iss?: string }[];
let logLines: string[];
const deps: ConnectPageDeps = {
  async openSession(offered) {
    if (offered === secret) return current;
    if (offered === expiredSecret) {
      throw new RoomkeyError("failed_precondition", "CONNECT_SESSION_EXPIRED", "the connect session has expired");
    }
    if (offered === faultySecret) throw new Error(`database down while reading ${offered}`);
    throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "the connect session secret is not valid");
  },
  async completeCallback(params) {
    completed.push(params);
    if (params.iss === "https://evil.example") {
      throw new RoomkeyError(
        "invalid_argument",
        "OAUTH_ISSUER_MISMATCH",
        "the authorization response came from another issuer",
      );
    }
    if (params.state !== "state-1") {
      throw new RoomkeyError("invalid_argument", "INVALID_REQUEST", "the state is unknown, expired or used");
    }
    return { ...current, accountId: "acc_0Nm2bqZp8tQy4rW1xKs9AA" };
  },
  async sessionOfState(state) {
    return state === "state-1" ? current : undefined;
  },
  logger: createLogger(
    "info",
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  ),
};

let server: Server;
let base: string;

beforeAll(async () => {
  const handle = createConnectPage(deps);
  server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    if (isConnectPath(path)) handle(req, res);
    else res.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  current = session();
  completed = [];
  logLines = [];
});

const open = (query: string, init?: RequestInit) => fetch(`${base}${connectPagePath}?${query}`, init);

/** The JSON the page hands its script. */
function configOf(html: string): Record<string, unknown> {
  const match = /<script type="application\/json" id="connect-config">([^<]*)<\/script>/.exec(html);
  if (!match?.[1]) throw new Error("no config in the page");
  return JSON.parse(match[1]) as Record<string, unknown>;
}

function expectSecurityHeaders(response: Response, frameAncestors: string) {
  const csp = response.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("style-src 'self'");
  expect(csp).toContain("base-uri 'none'");
  expect(csp).not.toContain("unsafe-inline");
  expect(csp).toMatch(new RegExp(`frame-ancestors ${frameAncestors.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  expect(response.headers.get("referrer-policy")).toBe("no-referrer");
  expect(response.headers.get("x-content-type-options")).toBe("nosniff");
}

describe("the connect page", () => {
  it("when a session opens, then it lists the integrations as buttons, for the end user, with strict headers", async () => {
    const response = await open(`session=${secret}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expectSecurityHeaders(response, `${platform} http://localhost:3000`);
    const html = await response.text();
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html).toContain("for Ada Lovelace");
    expect(html).toMatch(/<button type="button" class="integration" data-integration="keyed" data-auth="api_key">/);
    expect(html).toMatch(/<button type="button" class="integration" data-integration="crm" data-auth="oauth2">/);
    expect(html).toContain("Keyed CRM");
    expect(html).toContain('<label for="api-key">API key</label>');
    expect(html).toMatch(/<input id="api-key"[^>]*type="password"[^>]*autocomplete="off"/);
    expect(html).toContain('aria-live="polite"');
    // No inline script or style: the CSP forbids them.
    expect(html).not.toMatch(/<script(?![^>]*(src=|type="application\/json"))/);
    expect(html).not.toMatch(/style=|<style/);
    expect(configOf(html)).toEqual({
      mode: "connect",
      environment: "development",
      sessionId: "cs_0Nm2bqZp8tQy4rW1xKs9Lf",
      integrations: current.integrations,
      allowedOrigins: current.allowedOrigins,
      returnUrl: "",
      reauthorizeAccountId: "",
      accountId: "",
    });
  });

  it("when the secret is in the URL, then the page never carries it", async () => {
    const html = await (await open(`session=${secret}`)).text();
    expect(html).not.toContain(secret);
    expect(html).not.toContain(secret.slice("rkcs_development_".length));
  });

  it("when a display name is hostile, then it is escaped in the text and cannot end the config block", async () => {
    current = session({
      endUserName: '"><img src=x onerror=alert(1)>',
      returnUrl: "https://app.example.com/</script>",
    });
    const html = await (await open(`session=${secret}`)).text();
    expect(html).toContain("Hub &lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("for &quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
    expect(html).not.toContain("<script>alert(1)");
    expect(html).not.toContain("<img src=x");
    // Exactly two scripts: the asset and the config; the config is still whole JSON.
    expect(html.match(/<\/script>/g)).toHaveLength(2);
    const config = configOf(html);
    expect(config.returnUrl).toBe("https://app.example.com/</script>");
    expect((config.integrations as { displayName: string }[])[1]?.displayName).toBe("Hub <script>alert(1)</script>");
  });

  it("when the session has no allowed origin, then no one may frame it", async () => {
    current = session({ allowedOrigins: [] });
    const response = await open(`session=${secret}`);
    expectSecurityHeaders(response, "'none'");
  });

  it("when the session re-authorizes an account, then it says reconnect", async () => {
    current = session({
      integrations: [{ name: "keyed", displayName: "Keyed CRM", authType: "api_key" }],
      reauthorizeAccountId: "acc_0Nm2bqZp8tQy4rW1xKs9AA",
    });
    const html = await (await open(`session=${secret}`)).text();
    expect(html).toContain("<h1>Reconnect Keyed CRM</h1>");
    expect(configOf(html).reauthorizeAccountId).toBe("acc_0Nm2bqZp8tQy4rW1xKs9AA");
  });

  it("when the session is spent, then it says so and offers nothing to connect", async () => {
    current = session({ status: "spent", accountId: "acc_0Nm2bqZp8tQy4rW1xKs9AA" });
    const response = await open(`session=${secret}`);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("Already connected");
    expect(html).not.toContain('class="integration"');
  });

  it("when the secret is refused, then a plain error page says why with the refusal's status", async () => {
    const wrong = "rkcs_development_WrongWrongWrongWrongWrongWrongWrongWrong";
    const refused = await open(`session=${wrong}`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("cache-control")).toBe("no-store");
    expectSecurityHeaders(refused, "'none'");
    const text = await refused.text();
    expect(text).toContain("the connect session secret is not valid");
    expect(text).not.toContain(wrong);
    expect(text).not.toContain("connect.js");

    const expired = await open(`session=${expiredSecret}`);
    expect(expired.status).toBe(410);
    expect(await expired.text()).toContain("the connect session has expired");

    const missing = await open("");
    expect(missing.status).toBe(400);
  });

  it("when a session's status is expired or revoked, then the page is gone", async () => {
    for (const status of ["expired", "revoked"] as const) {
      current = session({ status });
      const response = await open(`session=${secret}`);
      expect(response.status).toBe(410);
      expect(await response.text()).not.toContain('class="integration"');
    }
  });

  it("when opening the session fails unexpectedly, then it answers 500 and logs without the query", async () => {
    const response = await open(`session=${faultySecret}`);
    expect(response.status).toBe(500);
    expectSecurityHeaders(response, "'none'");
    const text = await response.text();
    expect(text).not.toContain("database down");
    expect(text).not.toContain(faultySecret);
    expect(logLines.join("")).toContain('"path":"/connect"');
    expect(logLines.join("")).not.toContain("session=");
  });

  it("when reloaded without the secret, then a resume page takes it from the tab's storage", async () => {
    const response = await open("resume=cs_0Nm2bqZp8tQy4rW1xKs9Lf");
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(configOf(html)).toEqual({ mode: "resume", sessionId: "cs_0Nm2bqZp8tQy4rW1xKs9Lf" });
    expect((await open("resume=cs_bad")).status).toBe(400);
  });
});

describe("the OAuth callback", () => {
  const callback = (query: string) => fetch(`${base}${oauthCallbackPath}?${query}`);

  it("when the provider sends a code, then it completes the connection and hands the account to the script", async () => {
    const response = await callback("code=code-1&state=state-1&iss=https%3A%2F%2Fid.example");
    expect(response.status).toBe(200);
    expect(completed).toEqual([{ state: "state-1", code: "code-1", iss: "https://id.example" }]);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expectSecurityHeaders(response, `${platform} http://localhost:3000`);
    const html = await response.text();
    expect(html).toContain("Finishing the connection");
    const config = configOf(html);
    expect(config.mode).toBe("callback");
    expect(config.accountId).toBe("acc_0Nm2bqZp8tQy4rW1xKs9AA");
    expect(config.sessionId).toBe("cs_0Nm2bqZp8tQy4rW1xKs9Lf");
    expect(config.error).toBeUndefined();
    expect(html).not.toContain("code-1");
  });

  it("when the redirect has no iss, then none is passed on", async () => {
    await callback("code=code-2&state=state-1");
    expect(completed).toEqual([{ state: "state-1", code: "code-2" }]);
  });

  it("when the issuer is mixed up, then the page ends the session's attempt as failed", async () => {
    const response = await callback("code=code-3&state=state-1&iss=https%3A%2F%2Fevil.example");
    expect(response.status).toBe(400);
    const config = configOf(await response.text());
    expect(config.mode).toBe("callback");
    expect(config.error).toBe("the authorization response came from another issuer");
  });

  it("when the state is unknown, then a plain error page says so", async () => {
    const response = await callback("code=code-4&state=nobody-knows");
    expect(response.status).toBe(400);
    const html = await response.text();
    expect(html).toContain("the state is unknown, expired or used");
    expect(html).not.toContain("connect-config");
  });

  it("when the provider refuses, then the session's page ends as failed without completing anything", async () => {
    const response = await callback("error=access_denied&error_description=User+said+no&state=state-1");
    expect(response.status).toBe(200);
    expect(completed).toEqual([]);
    const config = configOf(await response.text());
    expect(config.error).toBe("The connection was not authorized.");
    const other = await callback("error=server_error&error_description=%3Cb%3Eoops%3C%2Fb%3E&state=state-1");
    expect(configOf(await other.text()).error).toBe(
      "The provider did not authorize the connection (server_error: <b>oops</b>).",
    );
    const unknown = await callback("error=access_denied&state=nobody-knows");
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain("The connection was not authorized.");
  });

  it("when the state is missing, then it is a bad request", async () => {
    expect((await callback("code=code-5")).status).toBe(400);
    expect(completed).toEqual([]);
  });
});

describe("the connect page's paths and assets", () => {
  it("when a method other than GET or HEAD comes, then it answers 405", async () => {
    for (const path of [connectPagePath, oauthCallbackPath, `${connectAssetsPath}connect.js`]) {
      const response = await fetch(`${base}${path}`, { method: "POST", body: "x" });
      expect(response.status, path).toBe(405);
      expect(response.headers.get("allow")).toBe("GET, HEAD");
      expectSecurityHeaders(response, "'none'");
    }
  });

  it("when a path under /connect is unknown, then it answers 404", async () => {
    for (const path of ["/connect/nothing", `${connectAssetsPath}other.js`, `${connectAssetsPath}`]) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(404);
      expectSecurityHeaders(response, "'none'");
    }
    expect(isConnectPath("/connection")).toBe(false);
    expect(isConnectPath("/connect")).toBe(true);
    expect(isConnectPath("/connect/oauth/callback")).toBe(true);
  });

  it("serves its script and stylesheet with their types, cacheable", async () => {
    const script = await fetch(`${base}${connectAssetsPath}connect.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(script.headers.get("cache-control")).toBe("public, max-age=300");
    expect(script.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await script.text()).toBe(connectScript);
    const style = await fetch(`${base}${connectAssetsPath}connect.css`);
    expect(style.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect(await style.text()).toContain(".card");
  });

  it("answers HEAD with the headers and no body", async () => {
    const response = await fetch(`${base}${connectPagePath}?session=${secret}`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.text()).toBe("");
  });

  it("has a script that parses, and that calls only this origin's AccountService", () => {
    expect(() => new Function(connectScript)).not.toThrow();
    expect(connectScript).toContain('fetch("/roomkey.v1.AccountService/" + method');
    expect(connectScript).not.toMatch(/innerHTML|eval\(|document\.write/);
  });
});
