import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { EnvironmentChanges } from "../../src/domain/environments/environments.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { createAuditHandlers } from "../../src/rpc/handlers/audit-handlers.js";
import { createEnvironmentHandlers, type EnvironmentHandlerDeps } from "../../src/rpc/handlers/environment-handlers.js";
import { createMasterKeyHandlers } from "../../src/rpc/handlers/master-key-handlers.js";
import { createPromotionHandlers } from "../../src/rpc/handlers/promotion-handlers.js";
import { unimplementedService } from "../../src/rpc/handlers/unimplemented.js";
import { environmentRecord, testPageTokens } from "../helpers/fakes.js";
import { adminKey, failure, headers, routerFor, tokenSecret } from "../helpers/router.js";

/** Handlers behind the real edge, over connect-es's in-memory transport, with a fake domain. */
function setup(scopes: string[] = []) {
  const updates: { name: string; changes: EnvironmentChanges }[] = [];
  const environments: EnvironmentHandlerDeps["environments"] = {
    create: async (name) => environmentRecord(name),
    get: async (name) => environmentRecord(name),
    update: async (name, changes) => {
      updates.push({ name, changes });
      return { ...environmentRecord(name), displayName: changes.displayName ?? name };
    },
    list: async () => ({ items: [environmentRecord("staging")], nextAfter: undefined }),
    remove: async () => undefined,
  };
  const integrations: EnvironmentHandlerDeps["integrations"] = {
    put: async () => {
      throw new Error("not used");
    },
    get: async () => {
      throw new Error("not used");
    },
    list: async () => ({ items: [], nextAfter: undefined }),
    remove: async () => undefined,
  };
  const unused = async (): Promise<never> => {
    throw new Error("not used");
  };
  const unusedWebhooks = {
    create: unused,
    get: unused,
    list: unused,
    update: unused,
    remove: unused,
    rotateSecret: unused,
    listDeliveries: unused,
    redeliver: unused,
  };
  const unusedRotation = {
    status: () => Promise.reject(new Error("not used by these tests")),
    requestRewraps: () => Promise.reject(new Error("not used by these tests")),
  };
  const { transport, edge } = routerFor(
    (router, made) => {
      router.service(
        EnvironmentService,
        made.wrap(
          EnvironmentService,
          createEnvironmentHandlers({
            environments,
            integrations,
            webhooks: unusedWebhooks,
            pages: testPageTokens(),
            promotion: createPromotionHandlers({
              promotion: { diff: unused, promote: unused },
              pages: testPageTokens(),
            }),
            audit: createAuditHandlers({ audit: { list: unused }, pages: testPageTokens() }),
            masterKeys: createMasterKeyHandlers({ rotation: unusedRotation }),
          }),
        ),
      );
      router.service(TokenService, made.wrap(TokenService, unimplementedService(TokenService)));
    },
    { scopes },
  );
  return {
    updates,
    edge,
    environments: createClient(EnvironmentService, transport),
    tokens: createClient(TokenService, transport),
  };
}

describe("EnvironmentService handlers behind the edge", () => {
  it("when UpdateEnvironment names settings.<field>, then only that setting reaches the domain", async () => {
    const { environments, updates } = setup();
    await environments.updateEnvironment(
      {
        environment: { displayName: "ignored", settings: { oauthRefreshMargin: { seconds: 120n } } },
        updateMask: { paths: ["settings.oauth_refresh_margin"] },
      },
      { headers: headers() },
    );
    expect(updates).toEqual([{ name: "staging", changes: { settings: { oauthRefreshMarginMs: 120_000 } } }]);
  });

  it("when UpdateEnvironment has no environment, then INVALID_ARGUMENT names it before the domain runs", async () => {
    const { environments, updates } = setup();
    const error = await failure(
      environments.updateEnvironment({ updateMask: { paths: ["display_name"] } }, { headers: headers() }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["environment"]);
    expect(updates).toEqual([]);
  });

  it("when a request breaks several rules, then every violation is listed", async () => {
    const { environments } = setup();
    const error = await failure(
      environments.listEnvironments({ pageSize: -1, pageToken: "x".repeat(600) }, { headers: headers() }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(
      error
        .findDetails(BadRequestSchema)[0]
        ?.fieldViolations.map((v) => v.field)
        .sort(),
    ).toEqual(["page_size", "page_token"]);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_REQUEST");
  });

  it("when a token lacks the scope, then PERMISSION_DENIED names the scope", async () => {
    const { environments } = setup(["environment:read"]);
    const error = await failure(
      environments.updateEnvironment(
        { environment: {}, updateMask: { paths: ["display_name"] } },
        { headers: headers(tokenSecret) },
      ),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.findDetails(ErrorInfoSchema)[0]?.metadata.scope).toBe("environment:write");
    const got = await environments.getEnvironment({}, { headers: headers(tokenSecret) });
    expect(got.environment?.name).toBe("staging");
  });

  it("when a token calls an admin-only method, then PERMISSION_DENIED asks for the admin key", async () => {
    const { environments } = setup(["environment:read", "environment:write"]);
    const error = await failure(environments.listEnvironments({}, { headers: headers(tokenSecret) }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ADMIN_KEY_REQUIRED");
  });

  it("when the environment is unknown, then NOT_FOUND, but CreateEnvironment may name a new one", async () => {
    const { environments } = setup();
    const error = await failure(environments.getEnvironment({}, { headers: headers(adminKey, "nowhere") }));
    expect(error.code).toBe(Code.NotFound);
    const created = await environments.createEnvironment({}, { headers: headers(adminKey, "nowhere") });
    expect(created.environment?.name).toBe("nowhere");
  });

  it("when a domain call throws an unexpected error, then the caller sees a bare INTERNAL without its message", async () => {
    const { environments } = setup();
    const error = await failure(
      environments.putIntegration(
        {
          integration: {
            name: "crm",
            authType: 1,
            credentialCheck: { url: "https://x.example" },
          },
        },
        { headers: headers() },
      ),
    );
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
  });

  it("when a method of a service that has not landed passes the edge, then UNIMPLEMENTED", async () => {
    const { tokens } = setup();
    const error = await failure(tokens.listTokens({}, { headers: headers() }));
    expect(error.code).toBe(Code.Unimplemented);
    const invalid = await failure(tokens.listTokens({}, { headers: headers(adminKey, "Bad") }));
    expect(invalid.code).toBe(Code.InvalidArgument);
  });

  it("when the edge is stopped for shutdown, then new calls are refused UNAVAILABLE", async () => {
    const { environments, edge } = setup();
    expect((await environments.getEnvironment({}, { headers: headers() })).environment?.name).toBe("staging");
    edge.stop();
    const error = await failure(environments.getEnvironment({}, { headers: headers() }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SHUTTING_DOWN");
    await edge.idle();
  });
});
