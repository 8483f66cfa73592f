/**
 * The hosted connect page in a real browser: Debian's Chromium driven by
 * playwright-core, against a real roomkey on FerretDB and Redis, the local
 * API-key provider (test/helpers/api-key-provider.ts) and an OAuth provider
 * (oauth2-mock-server, test/helpers/oauth-provider.ts). A tiny "platform"
 * server on another origin plays the app that made the session: it is the
 * session's allowed origin, its return URL, the opener of the popup and the
 * page that frames it.
 *
 * Chromium comes from scripts/ensure-chromium.sh (ROOMKEY_CHROMIUM). Without
 * one the browser tests are skipped, unless ROOMKEY_REQUIRE_BROWSER=1 (CI).
 * ROOMKEY_UPDATE_SCREENSHOT=1 writes the screenshots into docs/images/.
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPagePath, oauthCallbackPath } from "../../src/connect-page/connect-page.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type Deployment, startDeployment, testConfig } from "../helpers/server.js";

const executablePath = process.env.ROOMKEY_CHROMIUM ?? "/usr/bin/chromium";
const haveBrowser = existsSync(executablePath);
if (!haveBrowser && process.env.ROOMKEY_REQUIRE_BROWSER === "1") {
  throw new Error(`no Chromium at ${executablePath}: run scripts/ensure-chromium.sh`);
}
const root = resolve(import.meta.dirname, "../..");
const a = AccountService.method;

let d: Deployment;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;
let browser: Browser;
let platform: Server;
/** The platform's origin: `localhost`, so it is another origin than roomkey's `127.0.0.1`. */
let platformOrigin: string;
let roomkeyOrigin: string;
let env: string;
let token: string;

/** Where a screenshot goes: docs/images/ when updating them, else a temporary file. */
function screenshotPath(name: string): string {
  const path =
    process.env.ROOMKEY_UPDATE_SCREENSHOT === "1"
      ? join(root, "docs", "images", `${name}.png`)
      : join(tmpdir(), `roomkey-${name}-${process.pid}.png`);
  mkdirSync(resolve(path, ".."), { recursive: true });
  return path;
}

/**
 * The platform's pages: `/return` (the return URL), `/opener`, which opens
 * the connect URL from its `connect` query in a popup, and `/frame`, which
 * frames it; both keep every message they receive in `window.received`.
 */
function startPlatform(): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    res.setHeader("content-type", "text/html; charset=utf-8");
    if (url.pathname === "/return") {
      res.end("<!doctype html><title>Platform</title><h1>Back on the platform</h1>");
      return;
    }
    if (url.pathname === "/opener") {
      res.end(`<!doctype html><title>Platform</title>
<button id="open" type="button">Connect an account</button>
<script>
  window.received = [];
  window.addEventListener("message", function (event) {
    window.received.push({ origin: event.origin, data: event.data });
  });
  document.getElementById("open").addEventListener("click", function () {
    var target = new URLSearchParams(location.search).get("connect");
    window.open(target, "roomkey-connect", "popup,width=480,height=720");
  });
</script>`);
      return;
    }
    if (url.pathname === "/frame") {
      res.end(`<!doctype html><title>Platform</title>
<iframe id="roomkey" title="Connect an account" width="480" height="640"></iframe>
<script>
  window.received = [];
  window.addEventListener("message", function (event) {
    window.received.push({ origin: event.origin, data: event.data });
  });
  document.getElementById("roomkey").src = new URLSearchParams(location.search).get("connect");
</script>`);
      return;
    }
    res.statusCode = 404;
    res.end("not found");
  });
  return new Promise((done) => server.listen({ port: 0, host: "::", ipv6Only: false }, () => done(server)));
}

beforeAll(async () => {
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  platform = await startPlatform();
  platformOrigin = `http://localhost:${(platform.address() as AddressInfo).port}`;
  d = await startDeployment(testConfig({ ROOMKEY_PROVIDER_RETRY_MS: "50", ROOMKEY_HANDSHAKE_SWEEP_MS: "1000" }));
  roomkeyOrigin = `http://127.0.0.1:${d.server.app.httpPort}`;
  env = randomEnvironmentName();
  const admin = d.admin(env);
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, admin);
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: { ...apiKeyIntegration("acme", keys.url), displayName: "Acme CRM" } },
    admin,
  );
  await d.environments.unary(
    EnvironmentService.method.putIntegration,
    { integration: { ...oauthIntegration("hubspot", oauth.issuer, "client-secret-1"), displayName: "HubSpot" } },
    admin,
  );
  const created = await d.tokens.unary(
    TokenService.method.createToken,
    { name: "platform backend", scopes: ["accounts:read", "accounts:write"] },
    admin,
  );
  token = created.secret;
  if (haveBrowser) {
    browser = await chromium.launch({
      executablePath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await d?.stop();
  await keys?.stop();
  await oauth?.stop();
  platform?.closeAllConnections();
  await new Promise((done) => platform?.close(done));
});

/** A session for Ada, made by the platform's backend with its token. */
async function createSession(init: { returnUrl?: string; accountId?: string; allowedOrigins?: string[] } = {}) {
  const created = await d.accounts.unary(
    a.createConnectSession,
    {
      endUser: { id: "user-ada", displayName: "Ada Lovelace", email: "ada@example.com" },
      integrations: ["acme", "hubspot"],
      allowedOrigins: [platformOrigin],
      ...init,
      ...(init.accountId ? { integrations: [] } : {}),
    },
    metadataFor(env, token),
  );
  expect(created.secret).toMatch(new RegExp(`^rkcs_${env}_`));
  expect(created.connectUrl).toBe(`${roomkeyOrigin}${connectPagePath}?session=${encodeURIComponent(created.secret)}`);
  return created;
}

async function accountOf(id: string) {
  const { account } = await d.accounts.unary(a.getAccount, { id }, metadataFor(env, token));
  if (!account) throw new Error(`no account ${id}`);
  return account;
}

/** The ids of the accounts the page's ConnectAccount calls returned, in order. */
function recordConnects(page: Page): string[] {
  const ids: string[] = [];
  page.on("response", async (response) => {
    if (!response.url().endsWith("/roomkey.v1.AccountService/ConnectAccount") || !response.ok()) return;
    const body = (await response.json()) as { account?: { id?: string } };
    if (body.account?.id) ids.push(body.account.id);
  });
  return ids;
}

/** The page shows no secret, and its address no longer has it. */
async function expectNoSecret(page: Page, secret: string) {
  expect(page.url()).not.toContain(secret);
  expect((await page.textContent("body")) ?? "").not.toContain(secret);
  expect(await page.content()).not.toContain(secret);
}

describe.skipIf(!haveBrowser)("the hosted connect page in Chromium", () => {
  it("when the end user types an API key with the keyboard, then the account is connected for them", async () => {
    const session = await createSession();
    keys.allow("key-of-ada", { id: "remote-ada", name: "Ada at Acme" });

    // Phone-sized first: the list fits 375 px without scrolling sideways.
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
    const small = await phone.newPage();
    await small.goto(session.connectUrl);
    await small.getByRole("button", { name: /Acme CRM/ }).waitFor();
    await expectNoSecret(small, session.secret);
    expect(await small.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);
    await small.screenshot({ path: screenshotPath("connect-page-phone") });
    await phone.close();

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const connects = recordConnects(page);
    const response = await page.goto(session.connectUrl);
    expect(response?.status()).toBe(200);
    const headers = response?.headers() ?? {};
    expect(headers["cache-control"]).toBe("no-store");
    expect(headers["referrer-policy"]).toBe("no-referrer");
    expect(headers["x-content-type-options"]).toBe("nosniff");
    expect(headers["content-security-policy"]).toMatch(new RegExp(`frame-ancestors ${platformOrigin}$`));
    await page.getByRole("heading", { name: "Connect an account" }).waitFor();
    await expect(page.textContent("body")).resolves.toContain("for Ada Lovelace");
    await expect(page.getByRole("button", { name: /HubSpot/ }).count()).resolves.toBe(1);
    await expectNoSecret(page, session.secret);
    await page.screenshot({ path: screenshotPath("connect-page") });

    // Keyboard only: Tab to the first integration, Enter opens its form with the key field focused.
    await page.keyboard.press("Tab");
    expect(await page.locator(":focus").getAttribute("data-integration")).toBe("acme");
    await page.keyboard.press("Enter");
    expect(await page.locator(":focus").getAttribute("id")).toBe("api-key");

    // A wrong key first: the provider refuses it, the page says so and the form can be sent again.
    await page.keyboard.type("not-a-valid-key");
    await page.screenshot({ path: screenshotPath("connect-form") });
    await page.keyboard.press("Enter");
    await page.getByText(/That did not work/).waitFor({ timeout: 20_000 });
    await page.screenshot({ path: screenshotPath("connect-retry") });
    const [failedId] = connects;
    expect(failedId).toBeDefined();
    expect((await accountOf(failedId ?? "")).status).toBe(AccountStatus.FAILED);

    expect(await page.locator(":focus").getAttribute("id")).toBe("api-key");
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type("key-of-ada");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Connected" }).waitFor({ timeout: 20_000 });
    await expectNoSecret(page, session.secret);
    await page.screenshot({ path: screenshotPath("connect-done") });

    expect(connects).toHaveLength(2);
    const account = await accountOf(connects[1] ?? "");
    expect(account.status).toBe(AccountStatus.ACTIVE);
    expect(account.integration).toBe("acme");
    expect(account.remoteId).toBe("remote-ada");
    expect(account.endUser?.id).toBe("user-ada");
    expect(account.endUser?.displayName).toBe("Ada Lovelace");
    expect(account.tenantId).toBe("user-ada");
    await context.close();
  });

  it("when the end user connects with OAuth, then the provider sends them back through the fixed callback and the page returns to the platform", async () => {
    const session = await createSession({ returnUrl: `${platformOrigin}/return?from=test` });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const visited: string[] = [];
    const callbackAnswers: { status: number; headers: Record<string, string> }[] = [];
    page.on("request", (request) => {
      if (request.isNavigationRequest()) visited.push(request.url());
    });
    page.on("response", (response) => {
      if (new URL(response.url()).pathname === oauthCallbackPath) {
        callbackAnswers.push({ status: response.status(), headers: response.headers() });
      }
    });
    await page.goto(session.connectUrl);
    await expectNoSecret(page, session.secret);
    await page.getByRole("button", { name: /HubSpot/ }).click();
    await page.waitForURL((url) => url.href.startsWith(`${platformOrigin}/return`), { timeout: 30_000 });

    // The browser went to the provider, came back to roomkey's fixed callback, then to the return URL.
    expect(visited.some((url) => url.startsWith(`${oauth.issuer}/authorize`))).toBe(true);
    const callback = visited.find((url) => url.startsWith(`${roomkeyOrigin}${oauthCallbackPath}?`));
    expect(callback).toBeDefined();
    const callbackParams = new URL(callback ?? "").searchParams;
    expect(callbackParams.get("code")).toBeTruthy();
    expect(callbackParams.get("state")).toBeTruthy();
    expect(callbackAnswers[0]?.status).toBe(200);
    expect(callbackAnswers[0]?.headers["cache-control"]).toBe("no-store");
    expect(callbackAnswers[0]?.headers["content-security-policy"]).toContain(`frame-ancestors ${platformOrigin}`);

    const back = new URL(page.url());
    expect(back.searchParams.get("from")).toBe("test");
    expect(back.searchParams.get("status")).toBe("active");
    expect(back.searchParams.get("session_id")).toBe(session.session?.id);
    const accountId = back.searchParams.get("account_id") ?? "";
    expect(accountId).toMatch(/^acc_[0-9A-Za-z]{22}$/);
    expect(page.url()).not.toContain(session.secret);

    const account = await accountOf(accountId);
    expect(account.status).toBe(AccountStatus.ACTIVE);
    expect(account.integration).toBe("hubspot");
    expect(account.remoteId).toBe("johndoe");
    expect(account.endUser?.id).toBe("user-ada");
    await context.close();
  });

  it("when a platform opens the page in a popup, then only its origin receives the result from roomkey's origin", async () => {
    const session = await createSession();
    keys.allow("key-of-ada-2", { id: "remote-ada-2", name: "Ada's second Acme" });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${platformOrigin}/opener?connect=${encodeURIComponent(session.connectUrl)}`);
    const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#open")]);
    await popup.getByRole("button", { name: /Acme CRM/ }).waitFor();
    await expectNoSecret(popup, session.secret);
    const closed = popup.waitForEvent("close", { timeout: 30_000 });
    await popup.getByRole("button", { name: /Acme CRM/ }).click();
    await popup.getByLabel("API key").fill("key-of-ada-2");
    await popup.getByLabel("API key").press("Enter");

    await page.waitForFunction("window.received.length > 0", undefined, { timeout: 30_000 });
    await closed;
    const received = await page.evaluate<{ origin: string; data: Record<string, unknown> }[]>("window.received");
    expect(received).toHaveLength(1);
    expect(received[0]?.origin).toBe(roomkeyOrigin);
    expect(received[0]?.data).toEqual({
      type: "roomkey.connect",
      sessionId: session.session?.id,
      accountId: expect.stringMatching(/^acc_[0-9A-Za-z]{22}$/),
      status: "ACTIVE",
    });
    const account = await accountOf(String(received[0]?.data.accountId));
    expect(account.status).toBe(AccountStatus.ACTIVE);
    expect(account.endUser?.id).toBe("user-ada");
    await context.close();
  });

  it("when a page on an origin the session does not allow opens it, then that page receives nothing", async () => {
    const session = await createSession();
    keys.allow("key-of-ada-3", { id: "remote-ada-3", name: "Ada's third Acme" });
    // The same platform server reached by another name: another origin, not one the session allows.
    const foreign = platformOrigin.replace("localhost", "127.0.0.1");
    expect(foreign).not.toBe(platformOrigin);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${foreign}/opener?connect=${encodeURIComponent(session.connectUrl)}`);
    const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#open")]);
    const closed = popup.waitForEvent("close", { timeout: 30_000 });
    await popup.getByRole("button", { name: /Acme CRM/ }).click();
    await popup.getByLabel("API key").fill("key-of-ada-3");
    await popup.getByLabel("API key").press("Enter");
    await closed;
    await page.waitForTimeout(500);
    expect(await page.evaluate<unknown[]>("window.received")).toEqual([]);
    await context.close();
  });

  it("when a session re-authorizes an account, then the page says reconnect and the account keeps its id", async () => {
    keys.allow("first-key-of-bob", { id: "remote-bob", name: "Bob at Acme" });
    const first = await createSession();
    const context = await browser.newContext();
    const page = await context.newPage();
    const connects = recordConnects(page);
    await page.goto(first.connectUrl);
    await page.getByRole("button", { name: /Acme CRM/ }).click();
    await page.getByLabel("API key").fill("first-key-of-bob");
    await page.getByLabel("API key").press("Enter");
    await page.getByRole("heading", { name: "Connected" }).waitFor({ timeout: 20_000 });
    const accountId = connects[0] ?? "";
    expect((await accountOf(accountId)).status).toBe(AccountStatus.ACTIVE);

    keys.allow("second-key-of-bob", { id: "remote-bob", name: "Bob at Acme" });
    const again = await createSession({ accountId });
    await page.goto(again.connectUrl);
    await page.getByRole("heading", { name: "Reconnect Acme CRM" }).waitFor();
    await expect(page.locator("button.integration").count()).resolves.toBe(1);
    await page.getByRole("button", { name: /Reconnect Acme CRM/ }).click();
    await page.getByLabel("API key").fill("second-key-of-bob");
    await page.getByLabel("API key").press("Enter");
    await page.getByRole("heading", { name: "Connected" }).waitFor({ timeout: 20_000 });
    expect(connects).toEqual([accountId, accountId]);
    const account = await accountOf(accountId);
    expect(account.status).toBe(AccountStatus.ACTIVE);
    expect(account.endUser?.id).toBe("user-ada");
    await context.close();
  });

  it("when an allowed origin frames the page, then it works there and posts the result to it; another origin cannot frame it", async () => {
    keys.allow("key-of-ada-3", { id: "remote-ada-3", name: "Ada's third Acme" });
    const session = await createSession();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${platformOrigin}/frame?connect=${encodeURIComponent(session.connectUrl)}`);
    const frame = page.frameLocator("#roomkey");
    await frame.getByRole("button", { name: /Acme CRM/ }).click();
    await frame.getByLabel("API key").fill("key-of-ada-3");
    await frame.getByLabel("API key").press("Enter");
    await page.waitForFunction("window.received.length > 0", undefined, { timeout: 30_000 });
    const received = await page.evaluate<{ origin: string; data: Record<string, unknown> }[]>("window.received");
    expect(received).toHaveLength(1);
    expect(received[0]?.origin).toBe(roomkeyOrigin);
    expect(received[0]?.data).toMatchObject({
      type: "roomkey.connect",
      sessionId: session.session?.id,
      status: "ACTIVE",
    });

    // A session that allows another origin only: the browser refuses to show it in the platform's frame.
    const elsewhere = await createSession({ allowedOrigins: ["https://app.example.com"] });
    const answered: number[] = [];
    page.on("response", (response) => {
      if (response.url().startsWith(`${roomkeyOrigin}${connectPagePath}?`)) answered.push(response.status());
    });
    await page.goto(`${platformOrigin}/frame?connect=${encodeURIComponent(elsewhere.connectUrl)}`);
    await expect.poll(() => answered.length, { timeout: 10_000 }).toBeGreaterThan(0);
    await page.waitForLoadState("load");
    const framed = page.frames().find((f) => f !== page.mainFrame());
    expect(framed).toBeDefined();
    expect(await framed?.locator("button.integration").count()).toBe(0);
    await context.close();
  });

  it("when the session is refused, then the page says why and offers nothing", async () => {
    const session = await createSession();
    await d.accounts.unary(a.revokeConnectSession, { id: session.session?.id ?? "" }, metadataFor(env, token));
    const context = await browser.newContext();
    const page = await context.newPage();
    const response = await page.goto(session.connectUrl);
    expect(response?.status()).toBe(410);
    expect(response?.headers()["content-security-policy"]).toMatch(/frame-ancestors 'none'$/);
    await expect(page.textContent("body")).resolves.toMatch(/revoked/);
    await expect(page.locator("button.integration").count()).resolves.toBe(0);

    const unknown = await page.goto(`${roomkeyOrigin}${connectPagePath}?session=rkcs_${env}_nothing`);
    expect(unknown?.status()).toBe(401);
    expect((await page.textContent("body")) ?? "").not.toContain(session.secret);
    await context.close();
  });
});
