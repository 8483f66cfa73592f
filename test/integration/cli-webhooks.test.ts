import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCliIfStale, type CliRun, fieldOf, rowsOf, runCli, runCliOk } from "../helpers/cli-runner.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { eventually, startTestServer, type TestServer, testConfig } from "../helpers/server.js";
import { signersOf, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

/**
 * `roomkey webhook …`: the built CLI (`dist/`), run as a child process against
 * a real roomkey on real Redis and FerretDB, delivering to a local HTTP
 * receiver that answers 204. test/integration/cli.test.ts covers the other
 * nouns; the helpers here are small copies of its own.
 */

let server: TestServer;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  // Plain http to 127.0.0.1: testConfig already allows 127.0.0.0/8 as an outbound destination.
  server = await startTestServer(testConfig({ ROOMKEY_WEBHOOK_ALLOW_HTTP: "true" }));
  await buildCliIfStale();
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await receiver?.stop();
});

const roomkey = (args: string[]) => runCli(server, args);
const ok = (args: string[]) => runCliOk(server, args);
const field = fieldOf;
const rows = rowsOf;

describe("roomkey webhook against a real roomkey", { timeout: 90_000 }, () => {
  it("when an endpoint is created and a token is created, then deliveries, redeliver, rotate-secret, update and delete each show what happened", async () => {
    const env = randomEnvironmentName();
    await ok(["env", "create", env]);
    const path = `cli-${env}`;
    const url = receiver.url(path);

    const created = await ok([
      "-e",
      env,
      "webhook",
      "create",
      "--url",
      url,
      "--event",
      "token.created",
      "--description",
      "cli test",
    ]);
    const id = field(created.stdout, "id") ?? "";
    const secret = field(created.stdout, "signing secret") ?? "";
    expect(id).toMatch(/^we_\w{22}$/);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(field(created.stdout, "url")).toBe(url);
    expect(field(created.stdout, "event types")).toBe("token.created");
    expect(field(created.stdout, "enabled")).toBe("yes");
    expect(created.stderr).toContain("shown this once");

    const listed = await ok(["-e", env, "webhook", "list"]);
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID +URL +EVENTS +ENABLED +FAILING SINCE +DESCRIPTION$/);
    expect(rows(listed.stdout)).toEqual([[id, url, "token.created", "yes", "-", "cli test"]]);
    expect(listed.stdout).not.toContain(secret);
    const got = await ok(["-e", env, "--json", "webhook", "get", id]);
    expect(JSON.parse(got.stdout)).toEqual({ endpoint: expect.objectContaining({ id, url, enabled: true }) });
    expect(got.stdout).not.toContain(secret);

    // CreateToken raises token.created, which the worker delivers to the receiver.
    await ok(["-e", env, "token", "create", "--name", "hooked", "--scope", "tokens:read"]);
    await eventually(() => receiver.received(path).length === 1, 15_000, "the receiver gets token.created");
    const [first] = receiver.received(path);
    expect(signersOf(first ?? { headers: {}, body: "" }, [secret])).toEqual([0]);
    const eventId = String(first?.headers["webhook-id"]);

    let deliveries: CliRun = { code: null, stdout: "", stderr: "" };
    await eventually(
      async () => {
        deliveries = await ok(["-e", env, "webhook", "deliveries", "--endpoint", id]);
        return rows(deliveries.stdout)[0]?.[4] === "SUCCEEDED";
      },
      15_000,
      "the delivery is SUCCEEDED",
    );
    expect(deliveries.stdout.split("\n")[0]).toMatch(
      /^ID +EVENT +TYPE +ENDPOINT +STATUS +ATTEMPTS +CODE +ERROR +LATENCY +LAST ATTEMPT$/,
    );
    const [delivery] = rows(deliveries.stdout);
    expect(delivery?.[0]).toMatch(/^whd_\w{22}$/);
    expect(delivery?.slice(1, 8)).toEqual([eventId, "token.created", id, "SUCCEEDED", "1", "204", "-"]);
    expect(delivery?.[8]).toMatch(/^\d+ms$/);
    expect(delivery?.[9]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const failedOnly = await ok(["-e", env, "--json", "webhook", "deliveries", "--endpoint", id, "--status", "failed"]);
    expect(JSON.parse(failedOnly.stdout).deliveries ?? []).toEqual([]);

    const redelivered = await ok(["-e", env, "webhook", "redeliver", eventId, "--endpoint", id]);
    expect(rows(redelivered.stdout).map((row) => row.slice(1, 5))).toEqual([[eventId, "token.created", id, "PENDING"]]);
    await eventually(() => receiver.received(path).length === 2, 15_000, "the receiver gets the redelivery");
    expect(receiver.received(path)[1]?.headers["webhook-id"]).toBe(eventId);
    await eventually(
      async () => {
        const byEvent = await ok(["-e", env, "--json", "webhook", "deliveries", "--event", eventId]);
        const [again] = JSON.parse(byEvent.stdout).deliveries ?? [];
        return again?.status === "WEBHOOK_DELIVERY_STATUS_SUCCEEDED" && again.attempts === 2;
      },
      15_000,
      "the redelivery is SUCCEEDED, its second attempt",
    );

    const rotated = await ok(["-e", env, "webhook", "rotate-secret", id, "--overlap", "1h"]);
    const newSecret = field(rotated.stdout, "signing secret") ?? "";
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(secret);
    expect(field(rotated.stdout, "secret rotated")).toMatch(/^\d{4}-/);
    expect(field(rotated.stdout, "previous secret until")).toMatch(/^\d{4}-/);
    expect(rotated.stderr).toContain("shown this once");
    const badOverlap = await roomkey(["-e", env, "webhook", "rotate-secret", id, "--overlap", "1y"]);
    expect(badOverlap.code).toBe(2);
    expect(badOverlap.stderr).toContain("option '--overlap <duration>' argument '1y' is invalid");

    const nothing = await roomkey(["-e", env, "webhook", "update", id]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain("nothing to change");
    const disabled = await ok(["-e", env, "webhook", "update", id, "--disable", "--description", "paused"]);
    expect(field(disabled.stdout, "enabled")).toBe("no");
    expect(field(disabled.stdout, "description")).toBe("paused");
    expect(field(disabled.stdout, "url")).toBe(url);
    expect(field(disabled.stdout, "event types")).toBe("token.created");
    const badType = await roomkey(["-e", env, "webhook", "update", id, "--event", "token.nonsense"]);
    expect(badType.code).toBe(1);
    expect(badType.stderr).toMatch(/^error: INVALID_ARGUMENT /m);
    expect(badType.stderr).toContain("endpoint.event_types");

    expect((await ok(["-e", env, "webhook", "delete", id])).stdout.trim()).toBe(`deleted webhook endpoint ${id}`);
    const gone = await roomkey(["-e", env, "webhook", "get", id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: NOT_FOUND WEBHOOK_ENDPOINT_NOT_FOUND: /m);
    const none = await ok(["-e", env, "--json", "webhook", "list"]);
    expect(JSON.parse(none.stdout).endpoints ?? []).toEqual([]);
  });

  it("when deliveries names neither or both of --endpoint and --event, then it is a usage error (exit 2)", async () => {
    for (const args of [[], ["--endpoint", "we_x", "--event", "evt_x"]]) {
      const run = await roomkey(["-e", "development", "webhook", "deliveries", ...args]);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toContain("give exactly one of --endpoint and --event");
    }
  });
});
