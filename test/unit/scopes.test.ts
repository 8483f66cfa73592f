import { getOption } from "@bufbuild/protobuf";
import { field } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { CreateTokenRequestSchema } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { methodPolicies, scopes } from "../../src/rpc/method-policy.js";

/**
 * The scope names live twice on purpose: in the contract (CreateTokenRequest's
 * validation rule, which clients see) and in method-policy.ts (typed, for the
 * edge). This keeps the two the same.
 */
describe("the scope names", () => {
  it("when the contract lists the scopes a token may get, then they are exactly the edge's scopes", () => {
    const rules = getOption(CreateTokenRequestSchema.field.scopes, field);
    const items = rules.type.case === "repeated" ? rules.type.value.items : undefined;
    const allowed = items?.type.case === "string" ? items.type.value.in : [];
    expect([...allowed].sort()).toEqual([...scopes].sort());
  });

  it("when a method needs a scope, then it is one of them", () => {
    for (const policy of Object.values(methodPolicies)) {
      if (policy.access !== "admin") expect(scopes).toContain(policy.access);
    }
  });
});
