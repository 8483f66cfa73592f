import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createOutboundHttp,
  destinationDnsTimeoutMs,
  type HostResolver,
  type OutboundHttp,
  type OutboundResult,
} from "../../src/providers/outbound-http.js";

/** A server on 127.0.0.1 whose handler a test sets, counting the requests it gets. */
interface LocalServer {
  port: number;
  hits: number;
  handle(handler: (request: IncomingMessage, response: ServerResponse) => void): void;
  close(): Promise<void>;
}

async function startLocal(): Promise<LocalServer> {
  let handler = (_request: IncomingMessage, response: ServerResponse) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end('{"ok":true}');
  };
  const local: LocalServer = {
    port: 0,
    hits: 0,
    handle(next) {
      handler = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((request, response) => {
    local.hits++;
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  local.port = (server.address() as AddressInfo).port;
  return local;
}

/** DNS as a test says it is. */
function fakeDns(records: Record<string, string[]>): HostResolver {
  return async (hostname) => {
    const addresses = records[hostname];
    if (!addresses) throw Object.assign(new Error(`no such name ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? (6 as const) : (4 as const) }));
  };
}

function responseOf(result: OutboundResult) {
  if (result.kind !== "response") throw new Error(`expected an answer, got ${JSON.stringify(result)}`);
  return result.response;
}

let server: LocalServer;
let target: LocalServer;
const guards: OutboundHttp[] = [];

function guard(options: Partial<Parameters<typeof createOutboundHttp>[0]> = {}): OutboundHttp {
  const made = createOutboundHttp({ allow: [], timeoutMs: 2_000, ...options });
  guards.push(made);
  return made;
}

beforeAll(async () => {
  server = await startLocal();
  target = await startLocal();
});

afterEach(() => {
  for (const made of guards.splice(0)) made.close();
  server.hits = 0;
  target.hits = 0;
  server.handle((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end('{"ok":true}');
  });
});

afterAll(async () => {
  await server.close();
  await target.close();
});

describe("send, with an empty allowlist", () => {
  it.each([
    ["http://127.0.0.1:{port}/me", "127.0.0.1 is a loopback address"],
    ["http://2130706433:{port}/me", "127.0.0.1 is a loopback address"],
    ["http://0x7f.1:{port}/me", "127.0.0.1 is a loopback address"],
    ["http://[::ffff:127.0.0.1]:{port}/me", "::ffff:7f00:1 is a loopback address"],
    ["http://[::1]:{port}/me", "::1 is a loopback address"],
    ["http://localhost:{port}/me", '"localhost" names a loopback address'],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"],
  ])("when the URL is %s, then it is refused without connecting", async (template, why) => {
    const result = await guard().send({
      url: template.replace("{port}", String(server.port)),
      method: "GET",
      headers: {},
    });

    expect(result).toEqual({ kind: "refused", reason: why });
    expect(server.hits).toBe(0);
  });

  it("when a name resolves to a loopback address at connect time, then it is refused without connecting", async () => {
    const outbound = guard({ resolve: fakeDns({ "rebind.test": ["127.0.0.1"] }) });

    const result = await outbound.send({ url: `http://rebind.test:${server.port}/me`, method: "GET", headers: {} });

    expect(result).toEqual({ kind: "refused", reason: '"rebind.test" resolves to a loopback address' });
    expect(server.hits).toBe(0);
  });

  it("when a name resolves to a public and a private address, then it is refused", async () => {
    const outbound = guard({ resolve: fakeDns({ "mixed.test": ["8.8.8.8", "10.0.0.7"] }) });

    const result = await outbound.send({ url: "http://mixed.test/me", method: "GET", headers: {} });

    expect(result).toEqual({ kind: "refused", reason: '"mixed.test" resolves to a private address' });
  });

  it("when the URL is not http or https, then it is refused", async () => {
    const result = await guard().send({ url: "file:///etc/passwd", method: "GET", headers: {} });
    expect(result).toEqual({ kind: "refused", reason: "only http and https URLs are called" });
  });
});

describe("send, with loopback allowed", () => {
  const loopback = ["127.0.0.0/8", "::1"];

  it("when the provider answers, then status, headers and body come back and the request carries its body", async () => {
    let received = "";
    server.handle((request, response) => {
      request.on("data", (chunk: Buffer) => {
        received += chunk.toString();
      });
      request.on("end", () => {
        response.writeHead(201, { "content-type": "application/json", "retry-after": "7" });
        response.end(JSON.stringify({ method: request.method, length: request.headers["content-length"] }));
      });
    });

    const result = await guard({ allow: loopback }).send({
      url: `http://127.0.0.1:${server.port}/token`,
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=refresh_token&refresh_token=é",
    });

    const response = responseOf(result);
    expect(response.status).toBe(201);
    expect(response.header("Retry-After")).toBe("7");
    expect(response.contentType).toBe("application/json");
    expect(JSON.parse(response.text)).toEqual({ method: "POST", length: "41" }); // bytes, not characters
    expect(response.tooLarge).toBe(false);
    expect(received).toBe("grant_type=refresh_token&refresh_token=é");
  });

  it("when a name resolves to an allowed address at connect time, then the provider is reached", async () => {
    const outbound = guard({ allow: loopback, resolve: fakeDns({ "rebind.test": ["127.0.0.1"] }) });

    const result = await outbound.send({ url: `http://rebind.test:${server.port}/me`, method: "GET", headers: {} });

    expect(responseOf(result).status).toBe(200);
    expect(server.hits).toBe(1);
  });

  it("when the name itself is allowed, then every address it resolves to is", async () => {
    const outbound = guard({ allow: ["provider.test"], resolve: fakeDns({ "provider.test": ["127.0.0.1"] }) });

    const result = await outbound.send({ url: `http://provider.test:${server.port}/me`, method: "GET", headers: {} });

    expect(responseOf(result).status).toBe(200);
  });

  it("when localhost is resolved by the system, then loopback must be allowed to reach it", async () => {
    const url = `http://localhost:${server.port}/me`;
    expect(responseOf(await guard({ allow: loopback }).send({ url, method: "GET", headers: {} })).status).toBe(200);
    expect(await guard({ allow: ["::1"] }).send({ url, method: "GET", headers: {} })).toMatchObject({
      kind: "refused",
    });
  });

  it("when the provider answers 302 towards the metadata service, then the 302 is the answer and nothing follows it", async () => {
    server.handle((_request, response) => {
      response.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/iam/" });
      response.end();
    });

    const result = await guard({ allow: loopback }).send({
      url: `http://127.0.0.1:${server.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(responseOf(result).status).toBe(302);
    expect(server.hits).toBe(1);
  });

  it("when the provider redirects to an allowed address, then the redirect is still not followed", async () => {
    server.handle((_request, response) => {
      response.writeHead(307, { location: `http://127.0.0.1:${target.port}/elsewhere` });
      response.end();
    });

    const result = await guard({ allow: loopback }).send({
      url: `http://127.0.0.1:${server.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(responseOf(result).status).toBe(307);
    expect(target.hits).toBe(0);
  });

  it("when the body is larger than the cap, then reading stops and the answer says it was too large", async () => {
    server.handle((_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(`{"pad":"${"x".repeat(1024 * 1024)}"}`);
    });

    const result = await guard({ allow: loopback }).send({
      url: `http://127.0.0.1:${server.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(responseOf(result)).toMatchObject({ status: 200, tooLarge: true, text: "" });
  });

  it("when the body never ends, then reading stops at the cap long before the timeout", async () => {
    let timer: NodeJS.Timeout | undefined;
    server.handle((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain" });
      timer = setInterval(() => response.write("y".repeat(16 * 1024)), 1);
    });

    const started = Date.now();
    const result = await guard({ allow: loopback, timeoutMs: 10_000, maxResponseBytes: 64 * 1024 }).send({
      url: `http://127.0.0.1:${server.port}/stream`,
      method: "GET",
      headers: {},
    });
    clearInterval(timer);

    expect(responseOf(result).tooLarge).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("when the body is just under the cap, then it is read whole", async () => {
    const body = "z".repeat(1000);
    server.handle((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain" });
      response.end(body);
    });

    const result = await guard({ allow: loopback, maxResponseBytes: 1000 }).send({
      url: `http://127.0.0.1:${server.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(responseOf(result)).toMatchObject({ tooLarge: false, text: body });
  });

  it("when the provider does not answer in time, then the request fails with the timeout", async () => {
    server.handle(() => undefined);

    const result = await guard({ allow: loopback, timeoutMs: 200 }).send({
      url: `http://127.0.0.1:${server.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(result).toEqual({ kind: "failed", reason: "no answer within 200 ms" });
  });

  it("when nothing listens on the port, then the request fails with the network error", async () => {
    const closed = await startLocal();
    await closed.close();

    const result = await guard({ allow: loopback }).send({
      url: `http://127.0.0.1:${closed.port}/me`,
      method: "GET",
      headers: {},
    });

    expect(result).toEqual({ kind: "failed", reason: "ECONNREFUSED" });
  });
});

describe("check, for PutIntegration", () => {
  it.each([
    ["http://127.0.0.1:8080/me", "127.0.0.1 is a loopback address"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"],
    ["http://[::1]/", "::1 is a loopback address"],
    ["http://2130706433/", "127.0.0.1 is a loopback address"],
    ["http://localhost/", '"localhost" names a loopback address'],
    ["ftp://example.com/", "only http and https URLs are called"],
  ])("when the URL is %s, then it is refused: %s", async (url, why) => {
    expect(await guard().check(url)).toEqual({ allowed: false, why });
  });

  it("when a name resolves to a private address, then it is refused without saying which address", async () => {
    const outbound = guard({ resolve: fakeDns({ "db.corp.test": ["10.20.30.40"] }) });

    const check = await outbound.check("https://db.corp.test/me");

    expect(check).toEqual({ allowed: false, why: '"db.corp.test" resolves to a private address' });
    expect(JSON.stringify(check)).not.toContain("10.20.30.40");
  });

  it("when a name resolves to public addresses only, then it is allowed", async () => {
    const outbound = guard({ resolve: fakeDns({ "api.example.test": ["93.184.216.34", "2606:2800:220:1::1"] }) });
    expect(await outbound.check("https://api.example.test/me")).toEqual({ allowed: true });
  });

  it("when a name does not resolve, then it is allowed (the connect-time check still guards it)", async () => {
    const outbound = guard({ resolve: fakeDns({}) });
    expect(await outbound.check("https://not-yet.example.test/me")).toEqual({ allowed: true });
  });

  it("when DNS does not answer, then the check gives up after its bound and allows the name", async () => {
    const outbound = guard({ resolve: () => new Promise(() => undefined) });

    const started = Date.now();
    const check = await outbound.check("https://slow.example.test/me");

    expect(check).toEqual({ allowed: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(destinationDnsTimeoutMs - 50);
    expect(Date.now() - started).toBeLessThan(destinationDnsTimeoutMs + 1_000);
  });

  it("when loopback or the name is allowed, then the same URLs pass", async () => {
    const outbound = guard({
      allow: ["127.0.0.0/8", "::1", "db.corp.test"],
      resolve: fakeDns({ "db.corp.test": ["10.20.30.40"] }),
    });
    expect(await outbound.check("http://127.0.0.1:8080/me")).toEqual({ allowed: true });
    expect(await outbound.check("http://[::1]/")).toEqual({ allowed: true });
    expect(await outbound.check("http://localhost/")).toEqual({ allowed: true });
    expect(await outbound.check("https://db.corp.test/me")).toEqual({ allowed: true });
  });

  it("when the system resolver is used and the name does not exist, then it is allowed", async () => {
    expect(await guard().check("https://no-such-host.invalid/me")).toEqual({ allowed: true });
  });
});
