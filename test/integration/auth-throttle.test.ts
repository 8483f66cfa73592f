import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSessionSecret } from "../../src/domain/connect-sessions/connect-sessions.js";
import { generateSecret } from "../../src/domain/tokens/token-secret.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { httpRequest } from "../helpers/raw-clients.js";
import { type Deployment, startDeployment, testConfig } from "../helpers/server.js";

let d: Deployment;
const environment = "staging";
const getEnvironment = EnvironmentService.method.getEnvironment;

beforeAll(async () => {
  // One failure per second sustained, five at once.
  d = await startDeployment(testConfig({ ROOMKEY_AUTH_FAILURES_PER_MINUTE: "60", ROOMKEY_AUTH_FAILURE_BURST: "5" }));
});

afterAll(() => d.stop());

async function issue(scopes: string[]): Promise<string> {
  const created = await d.tokens.unary(TokenService.method.createToken, { name: "t", scopes }, d.admin(environment));
  return created.secret;
}

describe("failed authentications are throttled per address (9.3)", () => {
  it("when an address fails more than its burst, then it is refused RESOURCE_EXHAUSTED without its credentials being checked, and real tokens from it still pass", async () => {
    const cached = await issue(["environment:read"]);
    const notYetUsed = await issue(["environment:read"]);
    await d.environments.unary(getEnvironment, {}, metadataFor(environment, cached));

    for (let i = 0; i < 5; i++) {
      const error = await grpcFailure(
        d.environments.unary(getEnvironment, {}, metadataFor(environment, generateSecret(environment))),
      );
      expect(error.code).toBe(status.UNAUTHENTICATED);
    }
    const throttled = await grpcFailure(
      d.environments.unary(getEnvironment, {}, metadataFor(environment, generateSecret(environment))),
    );
    expect(throttled.code).toBe(status.RESOURCE_EXHAUSTED);
    const info = grpcDetails(throttled).errorInfo;
    expect(info?.reason).toBe("TOO_MANY_FAILED_AUTHENTICATIONS");
    expect(Number(info?.metadata.retry_after_seconds)).toBeGreaterThanOrEqual(1);

    // The HTTP port counts the same address.
    const overHttp = await httpRequest(d.server.app.httpPort, {
      path: "/roomkey.v1.EnvironmentService/GetEnvironment",
      headers: {
        "roomkey-environment": environment,
        authorization: `Bearer ${generateSecret(environment)}`,
        "content-type": "application/json",
      },
      body: new TextEncoder().encode("{}"),
    });
    expect(overHttp.status).toBe(429);

    // What memory admits at once still passes: a cached token and the admin key.
    await d.environments.unary(getEnvironment, {}, metadataFor(environment, cached));
    await d.environments.unary(getEnvironment, {}, d.admin(environment));
    // A real token this replica has not cached yet is looked up all the same: its hash is known to exist.
    await d.environments.unary(getEnvironment, {}, metadataFor(environment, notYetUsed));

    // A token comes back every second.
    await new Promise((r) => setTimeout(r, 1_100));
    const again = await grpcFailure(
      d.environments.unary(getEnvironment, {}, metadataFor(environment, generateSecret(environment))),
    );
    expect(again.code).toBe(status.UNAUTHENTICATED);
  });

  it("when calls succeed, then nothing is counted against their address", async () => {
    const secret = await issue(["environment:read"]);
    await new Promise((r) => setTimeout(r, 6_000));
    const client = grpcClient(EnvironmentService, d.server.grpcAddress);
    for (let i = 0; i < 50; i++) await client.unary(getEnvironment, {}, metadataFor(environment, secret));
    for (let i = 0; i < 5; i++) {
      const error = await grpcFailure(
        client.unary(getEnvironment, {}, metadataFor(environment, generateSecret(environment))),
      );
      expect(error.code).toBe(status.UNAUTHENTICATED);
    }
    client.close();
  });
});

describe("the hosted connect page is throttled like the API", () => {
  it("when one address keeps opening made-up connect links, then it is answered 429 without a lookup; the page's assets stay free", async () => {
    const base = `http://127.0.0.1:${d.server.app.httpPort}`;
    // Well-formed and correctly checksummed: each one would cost a database lookup.
    const made = () => generateSessionSecret(environment);
    const statuses: number[] = [];
    for (let i = 0; i < 20 && !statuses.includes(429); i++) {
      statuses.push((await fetch(`${base}/connect?session=${encodeURIComponent(made())}`)).status);
    }
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.length).toBeLessThanOrEqual(7);
    const throttled = await fetch(`${base}/connect?session=${encodeURIComponent(made())}`);
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await fetch(`${base}/connect/assets/connect.css`)).status).toBe(200);
  });
});
