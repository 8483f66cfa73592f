import { create, type DescMethod } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { type Code, createContextValues, createHandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Environment } from "../../src/domain/environments/environments.js";
import { EnvironmentService, GetEnvironmentRequestSchema } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { createAuthenticator } from "../../src/rpc/authentication.js";
import { admissionKey, createEdge, type EdgeObserver } from "../../src/rpc/edge.js";
import { rejectionOf } from "../helpers/fakes.js";

const adminKey = "admin-key-of-at-least-thirty-two-characters";
const getEnvironment = EnvironmentService.method.getEnvironment;

describe("the edge's observer (metrics)", () => {
  it("when concurrent calls on the HTTP port are refused at admission with one shared error, then each is counted once", async () => {
    // Concurrent calls for one environment await one load of it: when the load fails, they all reject with its error.
    const shared = new Error("MongoDB went away");
    const calls: (Code | undefined)[] = [];
    const observer: EdgeObserver = {
      call: (_method: DescMethod, code: Code | undefined) => calls.push(code),
      authenticationFailed: () => undefined,
    };
    const edge = createEdge({
      authenticator: createAuthenticator({ adminKey }),
      environments: { require: () => Promise.reject<Environment>(shared) },
      validator: createValidator(),
      logger: pino({ level: "silent" }),
      observer,
    });
    const impl = Object.fromEntries(EnvironmentService.methods.map((m) => [m.localName, () => ({})]));
    const wrapped = edge.wrap(
      EnvironmentService,
      impl as unknown as ServiceImpl<typeof EnvironmentService>,
    ) as unknown as Record<string, (request: unknown, ctx: unknown) => unknown>;
    const headers = { "roomkey-environment": "staging", authorization: `Bearer ${adminKey}` };

    // As the HTTP adapter does: every call is admitted first, then its handler runs with what admission said.
    const errors = await Promise.all(
      [1, 2, 3].map(() => rejectionOf(Promise.resolve(edge.admit(getEnvironment, new Headers(headers), "10.0.0.1")))),
    );
    expect(errors.every((error) => error === shared)).toBe(true);
    for (const error of errors) {
      const values = createContextValues().set(admissionKey, { error });
      const ctx = createHandlerContext({
        service: EnvironmentService,
        method: getEnvironment,
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://localhost/roomkey.v1.EnvironmentService/GetEnvironment",
        requestHeader: headers,
        contextValues: values,
      });
      await rejectionOf(
        Promise.resolve().then(() => wrapped.getEnvironment?.(create(GetEnvironmentRequestSchema), ctx)),
      );
    }
    expect(calls).toHaveLength(3);
  });
});
