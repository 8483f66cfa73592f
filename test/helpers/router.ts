import type { DescService } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { ConnectError, createRouterTransport, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { pino } from "pino";
import { notFound } from "../../src/domain/environments/environment-service.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { createAuthenticator } from "../../src/rpc/authentication.js";
import type { Principal } from "../../src/rpc/call-context.js";
import { createEdge, type Edge } from "../../src/rpc/edge.js";
import { environmentRecord } from "./fakes.js";

/** The admin key and the one token secret the router's edge knows. */
export const adminKey = "a".repeat(40);
export const tokenSecret = "rk_staging_fake";

/**
 * Handlers behind the real edge (authentication, scopes, validation), over
 * connect-es's in-memory transport: `tokenSecret` authenticates as a token of
 * staging with `scopes`; only the `known` environments exist.
 */
export function routerFor(
  services: (router: { service<S extends DescService>(service: S, impl: ServiceImpl<S>): void }, edge: Edge) => void,
  options: { scopes?: string[]; known?: string[] } = {},
): { transport: Transport; edge: Edge } {
  const known = new Set(options.known ?? ["staging"]);
  const token: Principal = {
    kind: "token",
    tokenId: "tok_1",
    scopes: new Set(options.scopes ?? []),
    environment: "staging",
  };
  const edge = createEdge({
    authenticator: createAuthenticator({
      adminKey,
      tokens: {
        authenticate: async (secret) => {
          if (secret !== tokenSecret) throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "unknown token");
          return token;
        },
        authenticateFromMemory: () => undefined,
        knownToExist: () => false,
      },
    }),
    environments: {
      require: async (name) => {
        if (!known.has(name)) throw notFound(name);
        return environmentRecord(name);
      },
    },
    validator: createValidator(),
    logger: pino({ level: "silent" }),
  });
  return { transport: createRouterTransport((router) => services(router, edge)), edge };
}

/** The metadata of a call: the environment and the bearer secret (the admin key unless told). */
export const headers = (secret = adminKey, env = "staging") => ({
  "roomkey-environment": env,
  authorization: `Bearer ${secret}`,
});

/** The error a call fails with; fails the test when it succeeds. */
export async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}
