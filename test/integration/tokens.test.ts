import { createHash } from "node:crypto";
import type { DescMethod, DescMethodServerStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret } from "../../src/domain/tokens/token-secret.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, TokenState, VerifyStatus } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { scopes as allScopes, methodPolicies } from "../../src/rpc/method-policy.js";
import { grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, eventually, startDeployment } from "../helpers/server.js";

let d: Deployment;
let env: string;

beforeAll(async () => {
  d = await startDeployment();
  env = await newEnvironment();
});

afterAll(() => d.stop());

const admin = (environment: string) => d.admin(environment);
const bearer = (environment: string, secret: string) => metadataFor(environment, secret);
const t = TokenService.method;

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(EnvironmentService.method.createEnvironment, {}, admin(name));
  return name;
}

async function issue(environment: string, scopes: string[] = [...allScopes], extra: { ttlSeconds?: number } = {}) {
  const response = await d.tokens.unary(
    t.createToken,
    {
      name: "test",
      scopes,
      ttl: extra.ttlSeconds === undefined ? undefined : durationFromMs(extra.ttlSeconds * 1000),
    },
    admin(environment),
  );
  if (!response.token) throw new Error("no token returned");
  return { id: response.token.id, secret: response.secret };
}

function tokensOf(environment: string) {
  return d.mongo
    .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${environment}`)
    .collection<{ _id: string; [field: string]: unknown }>("tokens");
}

/** Moves a token's expiry into the past, as time passing would. */
async function expire(environment: string, id: string): Promise<void> {
  await tokensOf(environment).updateOne({ _id: id }, { $set: { expireTime: new Date(Date.now() - 1_000) } });
}

describe("TokenService", () => {
  it("when a token is created, then its secret is returned once and only its hash is stored", async () => {
    const created = await d.tokens.unary(t.createToken, { name: "billing", scopes: ["tokens:verify"] }, admin(env));
    expect(created.secret).toMatch(new RegExp(`^rk_${env}_[0-9A-Za-z]{54}$`));
    expect(created.token?.displayPrefix).toBe(`${created.secret.slice(0, `rk_${env}_`.length + 4)}…`);
    expect(created.token?.state).toBe(TokenState.ACTIVE);
    expect(created.token?.createdBy).toBe("admin");
    const got = await d.tokens.unary(t.getToken, { id: created.token?.id ?? "" }, admin(env));
    expect(JSON.stringify(got, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(created.secret);
    const stored = await tokensOf(env).findOne({ _id: created.token?.id ?? "" });
    expect(stored?.hash).toBe(createHash("sha256").update(created.secret).digest("hex"));
    expect(JSON.stringify(stored)).not.toContain(created.secret);
  });

  it("when tokens are listed by state in pages, then newest come first and each state filters", async () => {
    const name = await newEnvironment();
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await issue(name, ["tokens:read"]));
    await d.tokens.unary(t.revokeToken, { id: made[0]?.id ?? "" }, admin(name));
    await d.tokens.unary(t.rotateToken, { id: made[1]?.id ?? "" }, admin(name));
    await expire(name, made[2]?.id ?? "");

    const all: string[] = [];
    let pageToken = "";
    do {
      const page = await d.tokens.unary(t.listTokens, { pageSize: 2, pageToken }, admin(name));
      all.push(...page.tokens.map((token) => token.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(all).toHaveLength(6);
    expect([...all].sort().reverse()).toEqual(all);

    const ids = async (state: TokenState) =>
      (await d.tokens.unary(t.listTokens, { state }, admin(name))).tokens.map((token) => token.id);
    expect(await ids(TokenState.REVOKED)).toEqual([made[0]?.id]);
    expect(await ids(TokenState.ROTATED)).toEqual([made[1]?.id]);
    expect(await ids(TokenState.EXPIRED)).toEqual([made[2]?.id]);
    expect((await ids(TokenState.ACTIVE)).length).toBe(3);
  });

  it("when CreateToken repeats an idempotency key, then the first token comes back without its secret", async () => {
    const request = { name: "once", scopes: ["tokens:read"], idempotencyKey: `key-${Date.now()}` };
    const first = await d.tokens.unary(t.createToken, request, admin(env));
    const again = await d.tokens.unary(t.createToken, request, admin(env));
    expect(again.token?.id).toBe(first.token?.id);
    expect(again.replayed).toBe(true);
    expect(again.secret).toBe("");
    expect(again.notice).toContain("is not shown again");
    const different = await grpcFailure(d.tokens.unary(t.createToken, { ...request, name: "other" }, admin(env)));
    expect(different.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(different).errorInfo?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
  });

  it("when five CreateToken calls share a new key at once, then one token exists", async () => {
    const name = await newEnvironment();
    const request = { name: "race", scopes: ["tokens:read"], idempotencyKey: "same-key" };
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => d.tokens.unary(t.createToken, request, admin(name))));
    expect(new Set(results.map((r) => r.token?.id)).size).toBe(1);
    expect(results.filter((r) => r.secret !== "").length).toBe(1);
    expect(await tokensOf(name).countDocuments({})).toBe(1);
  });

  it("when a token creates a token, then it may grant only scopes it has", async () => {
    const parent = await issue(env, ["tokens:write", "tokens:read"]);
    const denied = await grpcFailure(
      d.tokens.unary(
        t.createToken,
        { name: "child", scopes: ["tokens:read", "accounts:credentials"] },
        bearer(env, parent.secret),
      ),
    );
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(grpcDetails(denied).errorInfo?.metadata.scope).toBe("accounts:credentials");
    const child = await d.tokens.unary(
      t.createToken,
      { name: "child", scopes: ["tokens:read"] },
      bearer(env, parent.secret),
    );
    expect(child.token?.createdBy).toBe(parent.id);
  });

  it("when a token tries to rotate a token with scopes it lacks, then PERMISSION_DENIED and no new secret", async () => {
    const strong = await issue(env, ["accounts:credentials", "environment:write"]);
    const weak = await issue(env, ["tokens:write"]);
    const denied = await grpcFailure(d.tokens.unary(t.rotateToken, { id: strong.id }, bearer(env, weak.secret)));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(grpcDetails(denied).errorInfo?.metadata.scope).toBe("accounts:credentials");
    expect((await d.tokens.unary(t.getToken, { id: strong.id }, admin(env))).token?.state).toBe(TokenState.ACTIVE);
  });

  it("when an idempotency key's token was purged, then repeating the request makes a new token, never the old id", async () => {
    const name = await newEnvironment();
    const request = { name: "purged", scopes: ["tokens:read"], idempotencyKey: "purge-me" };
    const first = await d.tokens.unary(t.createToken, request, admin(name));
    const id = first.token?.id ?? "";
    await d.tokens.unary(t.revokeToken, { id }, admin(name));
    await tokensOf(name).updateOne({ _id: id }, { $set: { revokeTime: new Date(Date.now() - 400 * 86_400_000) } });
    await d.server.app.runSweep(name, "sweep-tokens");
    expect(await tokensOf(name).findOne({ _id: id })).toBeNull();
    const again = await d.tokens.unary(t.createToken, request, admin(name));
    expect(again.token?.id).not.toBe(id);
    expect(again.replayed).toBe(false);
    expect((await d.tokens.unary(t.verifyToken, { token: first.secret }, admin(name))).status).toBe(
      VerifyStatus.UNKNOWN,
    );
  });

  it("when two RotateToken calls race on one token, then exactly one successor exists", async () => {
    const name = await newEnvironment();
    const original = await issue(name, ["tokens:read"]);
    const outcomes = await Promise.allSettled(
      [1, 2, 3].map(() => d.tokens.unary(t.rotateToken, { id: original.id }, admin(name))),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    for (const failed of outcomes.filter((o) => o.status === "rejected")) {
      expect((failed.reason as { code: number }).code).toBe(status.FAILED_PRECONDITION);
    }
    expect(await tokensOf(name).countDocuments({ predecessorId: original.id })).toBe(1);
  });
});

describe("every token state, through authentication and VerifyToken", () => {
  let verifierSecret: string;

  beforeAll(async () => {
    verifierSecret = (await issue(env, ["tokens:verify"])).secret;
  });

  async function verify(environment: string, token: string) {
    return d.tokens.unary(
      t.verifyToken,
      { token },
      environment === env ? bearer(env, verifierSecret) : admin(environment),
    );
  }

  async function authenticate(environment: string, secret: string) {
    return d.environments.unary(EnvironmentService.method.getEnvironment, {}, bearer(environment, secret));
  }

  async function refusal(environment: string, secret: string) {
    const error = await grpcFailure(authenticate(environment, secret));
    return {
      code: error.code,
      reason: grpcDetails(error).errorInfo?.reason,
      metadata: grpcDetails(error).errorInfo?.metadata,
    };
  }

  it("when the token is active, then it authenticates and verifies VALID with its scopes", async () => {
    const { id, secret } = await issue(env, ["environment:read", "tokens:read"], { ttlSeconds: 3600 });
    expect((await authenticate(env, secret)).environment?.name).toBe(env);
    const answer = await verify(env, secret);
    expect(answer).toMatchObject({ valid: true, status: VerifyStatus.VALID, tokenId: id, environment: env });
    expect(answer.scopes).toEqual(["environment:read", "tokens:read"]);
    expect(answer.expireTime).toBeDefined();
  });

  it("when the token has expired, then UNAUTHENTICATED TOKEN_EXPIRED and EXPIRED", async () => {
    const { id, secret } = await issue(env, ["environment:read"]);
    await expire(env, id);
    expect(await refusal(env, secret)).toMatchObject({ code: status.UNAUTHENTICATED, reason: "TOKEN_EXPIRED" });
    expect(await verify(env, secret)).toMatchObject({ valid: false, status: VerifyStatus.EXPIRED, tokenId: id });
  });

  it("when the token was revoked, then UNAUTHENTICATED TOKEN_REVOKED and REVOKED", async () => {
    const { id, secret } = await issue(env, ["environment:read"]);
    await authenticate(env, secret);
    await d.tokens.unary(t.revokeToken, { id }, admin(env));
    expect(await refusal(env, secret)).toMatchObject({ code: status.UNAUTHENTICATED, reason: "TOKEN_REVOKED" });
    expect(await verify(env, secret)).toMatchObject({ valid: false, status: VerifyStatus.REVOKED });
  });

  it("when the token was rotated and is within its grace, then both secrets work and VALID says in grace", async () => {
    const { id, secret } = await issue(env, ["environment:read"]);
    const rotated = await d.tokens.unary(t.rotateToken, { id }, admin(env));
    expect(rotated.previous?.state).toBe(TokenState.ROTATED);
    expect(rotated.previous?.successorId).toBe(rotated.token?.id);
    await authenticate(env, secret);
    await authenticate(env, rotated.secret);
    const answer = await verify(env, secret);
    expect(answer).toMatchObject({ valid: true, status: VerifyStatus.VALID, inGracePeriod: true });
    const graceHours = Number(answer.expireTime?.seconds ?? 0n) - Date.now() / 1000;
    expect(graceHours / 3600).toBeGreaterThan(23.9);
    expect((await verify(env, rotated.secret)).inGracePeriod).toBe(false);
  });

  it("when the token was rotated and its grace has ended, then UNAUTHENTICATED TOKEN_ROTATED and ROTATED", async () => {
    const { id, secret } = await issue(env, ["environment:read"]);
    const rotated = await d.tokens.unary(t.rotateToken, { id, gracePeriod: { seconds: 0n } }, admin(env));
    expect(await refusal(env, secret)).toMatchObject({ code: status.UNAUTHENTICATED, reason: "TOKEN_ROTATED" });
    expect(await verify(env, secret)).toMatchObject({ valid: false, status: VerifyStatus.ROTATED });
    await authenticate(env, rotated.secret);
  });

  it("when the token belongs to another environment, then PERMISSION_DENIED naming both, and WRONG_ENVIRONMENT", async () => {
    const other = await newEnvironment();
    const { secret } = await issue(other, ["environment:read"]);
    expect(await refusal(env, secret)).toMatchObject({
      code: status.PERMISSION_DENIED,
      reason: "TOKEN_WRONG_ENVIRONMENT",
      metadata: { token_environment: other, requested_environment: env },
    });
    expect(await verify(env, secret)).toMatchObject({
      valid: false,
      status: VerifyStatus.WRONG_ENVIRONMENT,
      environment: other,
    });
  });

  it("when the secret is malformed, then UNAUTHENTICATED CREDENTIALS_INVALID and MALFORMED", async () => {
    for (const secret of ["rk_nope", `rk_${env}_short`, "sk_live_abcdef", `RK_${env}_${"a".repeat(50)}`]) {
      expect(await refusal(env, secret), secret).toMatchObject({
        code: status.UNAUTHENTICATED,
        reason: "CREDENTIALS_INVALID",
      });
      expect((await verify(env, secret)).status, secret).toBe(VerifyStatus.MALFORMED);
    }
  });

  it("when the checksum is wrong, then UNAUTHENTICATED TOKEN_BAD_CHECKSUM and BAD_CHECKSUM", async () => {
    const { secret } = await issue(env, ["environment:read"]);
    const typo = `${secret.slice(0, -1)}${secret.endsWith("a") ? "b" : "a"}`;
    expect(await refusal(env, typo)).toMatchObject({ code: status.UNAUTHENTICATED, reason: "TOKEN_BAD_CHECKSUM" });
    expect((await verify(env, typo)).status).toBe(VerifyStatus.BAD_CHECKSUM);
  });

  it("when a well-formed token was never issued, then UNAUTHENTICATED CREDENTIALS_INVALID and UNKNOWN", async () => {
    const forged = generateSecret(env);
    expect(await refusal(env, forged)).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CREDENTIALS_INVALID" });
    expect(await verify(env, forged)).toMatchObject({ valid: false, status: VerifyStatus.UNKNOWN, tokenId: "" });
  });

  it("when the token's environment was deleted, then it opens nothing, even if the name comes back", async () => {
    const doomed = await newEnvironment();
    const { secret } = await issue(doomed, ["environment:read", "tokens:verify"]);
    await authenticate(doomed, secret);
    await d.environments.unary(EnvironmentService.method.deleteEnvironment, {}, admin(doomed));
    expect(await refusal(doomed, secret)).toMatchObject({
      code: status.UNAUTHENTICATED,
      reason: "CREDENTIALS_INVALID",
    });
    const missing = await grpcFailure(d.tokens.unary(t.verifyToken, { token: secret }, admin(doomed)));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(await verify(env, secret)).toMatchObject({ valid: false, status: VerifyStatus.WRONG_ENVIRONMENT });
    await d.environments.unary(EnvironmentService.method.createEnvironment, {}, admin(doomed));
    expect(await refusal(doomed, secret)).toMatchObject({
      code: status.UNAUTHENTICATED,
      reason: "CREDENTIALS_INVALID",
    });
  });
});

/** Every RPC of the three services, with an empty request. */
const allMethods: DescMethod[] = [EnvironmentService, TokenService, AccountService].flatMap((s) => s.methods);

function clientFor(method: DescMethod) {
  return method.parent === EnvironmentService ? d.environments : method.parent === TokenService ? d.tokens : d.accounts;
}

const isServerStreaming = (m: DescMethod): m is DescMethodServerStreaming => m.methodKind === "server_streaming";
const isUnary = (m: DescMethod): m is DescMethodUnary => m.methodKind === "unary";

/** Calls any method with an empty request; resolves with the status code it ended with (0 for OK). */
async function callWith(
  method: DescMethod,
  metadata: Metadata,
): Promise<{ code: number; reason?: string; scope?: string }> {
  const client = clientFor(method);
  const refused = (error: { code: number }) => {
    const info = grpcDetails(error as ServiceError).errorInfo;
    return { code: error.code, reason: info?.reason, scope: info?.metadata.scope };
  };
  if (isServerStreaming(method)) {
    return new Promise((resolve) => {
      // A stream that passed the edge stays open (WatchAccounts): the deadline ends it.
      const stream = client.stream(method, {}, metadata, { deadline: Date.now() + 1_500 });
      stream.on("data", () => undefined);
      stream.on("error", (error: ServiceError) => resolve(refused(error)));
      stream.on("end", () => resolve({ code: 0 }));
    });
  }
  if (!isUnary(method)) throw new Error(`unexpected ${method.methodKind}`);
  try {
    await client.unary(method, {}, metadata);
    return { code: 0 };
  } catch (error) {
    return refused(error as ServiceError);
  }
}

describe("a token of one environment against every RPC of another", () => {
  it.each(allMethods.map((m) => [`${m.parent.name}/${m.name}`, m] as const))(
    "when it calls %s, then PERMISSION_DENIED TOKEN_WRONG_ENVIRONMENT",
    async (_label, method) => {
      const [a, b] = [env, await newEnvironment()];
      const { secret } = await issue(a);
      const result = await callWith(method, bearer(b, secret));
      expect(result).toMatchObject({ code: status.PERMISSION_DENIED, reason: "TOKEN_WRONG_ENVIRONMENT" });
    },
  );
});

describe("the scope table, one test per RPC", () => {
  it.each(allMethods.map((m) => [`${m.parent.name}/${m.name}`, m] as const))(
    "when %s is called with and without its scope, then only the scope opens it",
    async (_label, method) => {
      const access = methodPolicies[`${method.parent.typeName}/${method.name}`]?.access;
      if (!access) throw new Error("no policy");
      const { secret: everything } = await issue(env);
      if (access === "admin") {
        const result = await callWith(method, bearer(env, everything));
        expect(result).toMatchObject({ code: status.PERMISSION_DENIED, reason: "ADMIN_KEY_REQUIRED" });
        return;
      }
      const { secret: lacking } = await issue(
        env,
        allScopes.filter((s) => s !== access),
      );
      expect(await callWith(method, bearer(env, lacking))).toMatchObject({
        code: status.PERMISSION_DENIED,
        reason: "SCOPE_MISSING",
        scope: access,
      });
      const { secret: only } = await issue(env, [access]);
      const allowed = await callWith(method, bearer(env, only));
      expect(allowed.code, `${access} should open it`).not.toBe(status.PERMISSION_DENIED);
      expect(allowed.code).not.toBe(status.UNAUTHENTICATED);
    },
  );
});

describe("last_used_time", () => {
  it("when a token is used, then GetToken shows it within seconds (written in batches)", async () => {
    const { id, secret } = await issue(env, ["environment:read"]);
    const before = await d.tokens.unary(t.getToken, { id }, admin(env));
    expect(before.token?.lastUsedTime).toBeUndefined();
    const used = Date.now();
    for (let i = 0; i < 20; i++)
      await d.environments.unary(EnvironmentService.method.getEnvironment, {}, bearer(env, secret));
    const took = await eventually(
      async () => (await d.tokens.unary(t.getToken, { id }, admin(env))).token?.lastUsedTime !== undefined,
      10_000,
      "last_used_time",
    );
    const after = await d.tokens.unary(t.getToken, { id }, admin(env));
    expect(Number(after.token?.lastUsedTime?.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(used / 1000) * 1000);
    console.log(`last_used_time visible ${took} ms after use`);
  });
});

describe("the rotation worker", () => {
  it("when a rotated token's grace ends, then the delayed job retires it", async () => {
    const name = await newEnvironment();
    const { id, secret } = await issue(name, ["environment:read"]);
    await d.tokens.unary(t.rotateToken, { id, gracePeriod: { seconds: 1n } }, admin(name));
    await d.environments.unary(EnvironmentService.method.getEnvironment, {}, bearer(name, secret));
    await eventually(
      async () => (await tokensOf(name).findOne({ _id: id }))?.retireTime !== undefined,
      10_000,
      "retired",
    );
    const error = await grpcFailure(
      d.environments.unary(EnvironmentService.method.getEnvironment, {}, bearer(name, secret)),
    );
    expect(grpcDetails(error).errorInfo?.reason).toBe("TOKEN_ROTATED");
  });

  it("when the sweep runs, then it marks expired tokens and purges ended ones past retention, and running it twice changes nothing more", async () => {
    const name = await newEnvironment();
    const expiring = await issue(name, ["tokens:read"]);
    const old = await issue(name, ["tokens:read"]);
    const kept = await issue(name, ["tokens:read"]);
    await expire(name, expiring.id);
    await tokensOf(name).updateOne(
      { _id: old.id },
      { $set: { revokeTime: new Date(Date.now() - 40 * 86_400_000), state: "revoked" } },
    );
    const sweep = async () =>
      (await d.server.app.runSweep(name, "sweep-tokens")) as { expired: number; purged: number };
    // The environment's own periodic sweep may run first: the outcome is what counts.
    await sweep();
    expect((await tokensOf(name).findOne({ _id: expiring.id }))?.state).toBe("expired");
    expect(await tokensOf(name).findOne({ _id: old.id })).toBeNull();
    expect((await tokensOf(name).findOne({ _id: kept.id }))?.state).toBe("active");
    expect(await sweep()).toMatchObject({ expired: 0, purged: 0 });
  });
});
