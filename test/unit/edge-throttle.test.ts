import { createValidator } from "@bufbuild/protovalidate";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Environment } from "../../src/domain/environments/environments.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { createAuthenticator } from "../../src/rpc/authentication.js";
import type { Principal } from "../../src/rpc/call-context.js";
import { createEdge } from "../../src/rpc/edge.js";
import { createFailureThrottle } from "../../src/rpc/failure-throttle.js";
import { type Deferred, deferred, rejectionOf, settle } from "../helpers/fakes.js";

const adminKey = "admin-key-of-at-least-thirty-two-characters";
const getEnvironment = EnvironmentService.method.getEnvironment;
const principal: Principal = {
  kind: "token",
  tokenId: "tok_1",
  scopes: new Set(["environment:read"]),
  environment: "staging",
};

/** An edge whose token checks the test holds open, with a throttle of 5 failures at once and 60 a minute. */
function setup() {
  let now = 0;
  const lookups: Deferred<Principal>[] = [];
  const known = new Set<string>();
  const cached = new Set<string>();
  const throttle = createFailureThrottle({ perMinute: 60, burst: 5, maxPeers: 100, now: () => now });
  const edge = createEdge({
    authenticator: createAuthenticator({
      adminKey,
      tokens: {
        authenticate: () => {
          const pending = deferred<Principal>();
          lookups.push(pending);
          return pending.promise;
        },
        authenticateFromMemory: (secret) => (cached.has(secret) ? principal : undefined),
        knownToExist: (secret) => known.has(secret),
      },
    }),
    throttle,
    environments: { require: (name) => ({ name, state: "active" }) as Environment },
    validator: createValidator(),
    logger: pino({ level: "silent" }),
  });
  const admit = (secret: string, peer = "10.0.0.1") =>
    Promise.resolve().then(() =>
      edge.admit(
        getEnvironment,
        new Headers({ "roomkey-environment": "staging", authorization: `Bearer ${secret}` }),
        peer,
      ),
    );
  const refuse = (lookup: Deferred<Principal>) =>
    lookup.reject(new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "unknown"));
  return { admit, lookups, known, cached, refuse, advance: (ms: number) => (now += ms) };
}

describe("the edge's failure throttle", () => {
  it("when 20 checks from one address are unsettled at once, then only as many as its burst run; the rest are refused", async () => {
    const { admit, lookups, refuse } = setup();
    const calls = Array.from({ length: 20 }, (_, i) => rejectionOf(admit(`rk_made_up_${i}`)));
    await settle();
    expect(lookups).toHaveLength(5);
    for (const lookup of lookups) refuse(lookup);
    const errors = (await Promise.all(calls)) as RoomkeyError[];
    expect(errors.filter((e) => e.reason === "TOO_MANY_FAILED_AUTHENTICATIONS")).toHaveLength(15);
    expect(errors.filter((e) => e.reason === "CREDENTIALS_INVALID")).toHaveLength(5);
  });

  it("when a check succeeds, then its token comes back: valid callers never use the budget up", async () => {
    const { admit, lookups } = setup();
    for (let i = 0; i < 20; i++) {
      const call = admit(`rk_valid_${i}`);
      await settle();
      lookups[i]?.resolve(principal);
      await expect(call).resolves.toMatchObject({ environment: "staging" });
    }
  });

  it("when the address is throttled, then a cached token, the admin key and a token known to exist still pass", async () => {
    const { admit, lookups, refuse, known, cached } = setup();
    const failures = Array.from({ length: 5 }, (_, i) => rejectionOf(admit(`rk_bad_${i}`)));
    await settle();
    for (const lookup of lookups.splice(0)) refuse(lookup);
    await Promise.all(failures);
    expect(((await rejectionOf(admit("rk_bad_again"))) as RoomkeyError).reason).toBe("TOO_MANY_FAILED_AUTHENTICATIONS");
    cached.add("rk_cached");
    await expect(admit("rk_cached")).resolves.toMatchObject({ principal });
    await expect(admit(adminKey)).resolves.toMatchObject({ principal: { kind: "admin" } });
    known.add("rk_real_not_cached");
    const real = admit("rk_real_not_cached");
    await settle();
    lookups[0]?.resolve(principal);
    await expect(real).resolves.toMatchObject({ principal });
    // Another address is not affected.
    const elsewhere = rejectionOf(admit("rk_bad_elsewhere", "10.0.0.2"));
    await settle();
    expect(lookups).toHaveLength(2);
    if (lookups[1]) refuse(lookups[1]);
    expect(((await elsewhere) as RoomkeyError).reason).toBe("CREDENTIALS_INVALID");
  });
});
