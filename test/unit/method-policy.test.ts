import { getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { CreateTokenRequestSchema, TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { methodPolicies, policyOf, scopes } from "../../src/rpc/method-policy.js";

const services = [EnvironmentService, TokenService, AccountService];
const methods = services.flatMap((service) => service.methods);
const methodNamed = (name: string) => {
  const found = EnvironmentService.methods.find((m) => m.name === name);
  if (!found) throw new Error(`EnvironmentService has no method ${name}`);
  return found;
};

describe("method policies", () => {
  it("when the services are read, then they have methods to check", () => {
    expect(methods.length).toBeGreaterThanOrEqual(20);
  });

  it.each(methods.map((m) => [`${m.parent.typeName}/${m.name}`, m] as const))(
    "when %s is called, then it has a policy with a known access",
    (_name, method) => {
      const policy = policyOf(method);
      expect(policy.access === "admin" || (scopes as readonly string[]).includes(policy.access)).toBe(true);
      expect(["existing", "any"]).toContain(policy.environment);
    },
  );

  it("when the table is read, then every entry belongs to a method of the services", () => {
    const known = new Set(methods.map((m) => `${m.parent.typeName}/${m.name}`));
    expect(Object.keys(methodPolicies).filter((key) => !known.has(key))).toEqual([]);
  });

  it("when the proto's CreateToken rule lists the scopes, then it lists exactly the ones policies use", () => {
    const rules = getOption(CreateTokenRequestSchema.field.scopes, fieldRules);
    const items = rules.type.case === "repeated" ? rules.type.value.items?.type : undefined;
    const allowed = items?.case === "string" ? items.value.in : [];
    expect([...allowed].sort()).toEqual([...scopes].sort());
  });

  it("when CreateEnvironment is called, then it needs the admin key and a new environment", () => {
    expect(policyOf(methodNamed("CreateEnvironment"))).toEqual({ access: "admin", environment: "any" });
  });

  it.each(["ListEnvironments", "DeleteEnvironment"])("when %s is called, then it needs the admin key", (name) => {
    expect(policyOf(methodNamed(name)).access).toBe("admin");
  });

  it("when any method but CreateEnvironment and DeleteEnvironment is called, then its environment must be active", () => {
    const unchecked = methods.filter((m) => policyOf(m).environment === "any").map((m) => m.name);
    expect(unchecked).toEqual(["CreateEnvironment", "DeleteEnvironment"]);
  });
});
