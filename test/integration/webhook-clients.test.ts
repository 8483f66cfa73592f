import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookVerificationError, WebhookVerifier } from "../../src/client/webhooks.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";
import { type ReceivedDelivery, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

/**
 * Issue 13, point 6: the verification helper of every shipped client (Go,
 * Python, TypeScript) checks real deliveries from roomkey, and refuses the
 * same deliveries tampered with.
 */
const root = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);

let d: Deployment;
let receiver: WebhookReceiver;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "roomkey-webhook-clients-"));
  receiver = await startWebhookReceiver();
  d = await startDeployment(testConfig({ ROOMKEY_WEBHOOK_ALLOW_HTTP: "true" }));
  await run("go", ["build", "-o", join(work, "verify-webhook"), "./examples/verify-webhook"], {
    cwd: join(root, "clients/go"),
    timeout: 280_000,
  });
}, 300_000);

afterAll(async () => {
  await d?.stop();
  await receiver?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Delivery {
  headers: Record<string, string>;
  body: string;
}

function asDelivery(received: ReceivedDelivery): Delivery {
  const headers: Record<string, string> = {};
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"]) {
    headers[name] = String(received.headers[name] ?? "");
  }
  return { headers, body: received.body };
}

/** Runs a verifier program with the deliveries on stdin; resolves with its output lines. */
function verifyWith(command: string, args: string[], input: unknown, env: Record<string, string> = {}) {
  return new Promise<string[]>((done, failed) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("exit", (code) =>
      code === 0 ? done(out.trim().split("\n")) : failed(new Error(`${command} exited ${code}: ${err}`)),
    );
    child.stdin.end(JSON.stringify(input));
  });
}

describe("verifying real deliveries in every client language", () => {
  it("when roomkey delivers signed events, then the Go, Python and TypeScript helpers accept them and refuse tampered copies", async () => {
    const env = randomEnvironmentName();
    await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(env));
    const path = `clients-${env}`;
    const created = await d.environments.unary(
      EnvironmentService.method.createWebhookEndpoint,
      { endpoint: { url: receiver.url(path), enabled: true } },
      d.admin(env),
    );
    const secret = created.signingSecret;
    const token = await d.tokens.unary(
      TokenService.method.createToken,
      { name: "verified", scopes: ["accounts:read"] },
      d.admin(env),
    );
    await d.tokens.unary(TokenService.method.revokeToken, { id: token.token?.id ?? "" }, d.admin(env));
    await eventually(() => receiver.received(path).length === 2, 10_000, "two deliveries");
    // Order is not guaranteed: the created event first, as the expectations below read.
    const real = receiver
      .received(path)
      .map(asDelivery)
      .sort((x, y) => (x.body.includes('"token.created"') ? 0 : 1) - (y.body.includes('"token.created"') ? 0 : 1));

    const [first] = real as [Delivery, ...Delivery[]];
    const tampered: [string, Delivery][] = [
      ["bad_signature", { ...first, body: first.body.replace('"token.created"', '"token.revoked"') }],
      ["bad_signature", { ...first, headers: { ...first.headers, "webhook-id": "evt_0000000000000000000000" } }],
      [
        "bad_signature",
        {
          ...first,
          headers: { ...first.headers, "webhook-timestamp": String(Number(first.headers["webhook-timestamp"]) - 1) },
        },
      ],
      [
        "timestamp_too_old",
        { ...first, headers: { ...first.headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600) } },
      ],
      ["missing_header", { ...first, headers: { ...first.headers, "webhook-signature": "" } }],
    ];
    const input = { secrets: [secret], deliveries: [...real, ...tampered.map(([, delivery]) => delivery)] };
    const expected = [
      ...real.map((r) => `ok ${r.headers["webhook-id"]} ${(JSON.parse(r.body) as { type: string }).type}`),
      ...tampered.map(([reason]) => `refused ${reason}`),
    ];
    expect(expected.slice(0, 2).map((line) => line.split(" ")[2])).toEqual(["token.created", "token.revoked"]);

    const go = await verifyWith(join(work, "verify-webhook"), [], input);
    expect(go).toEqual(expected);
    const python = await verifyWith(
      "/usr/bin/python3",
      [join(root, "clients/python/examples/verify_webhook.py")],
      input,
      {
        PYTHONPATH: join(root, "clients/python"),
      },
    );
    expect(python).toEqual(expected);
    // The TypeScript client's helper, as a Node receiver would call it.
    const verifier = new WebhookVerifier(secret);
    const typescript = input.deliveries.map((delivery) => {
      try {
        const event = verifier.verify(delivery.headers, delivery.body) as { type: string };
        return `ok ${delivery.headers["webhook-id"]} ${event.type}`;
      } catch (error) {
        if (error instanceof WebhookVerificationError) return `refused ${error.reason}`;
        throw error;
      }
    });
    expect(typescript).toEqual(expected);
    // Another endpoint's secret verifies none of them.
    const other = await verifyWith(join(work, "verify-webhook"), [], {
      secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
      deliveries: real,
    });
    expect(other).toEqual(["refused bad_signature", "refused bad_signature"]);
  });
});
