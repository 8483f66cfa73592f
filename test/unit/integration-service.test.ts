import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DecryptionError, open } from "../../src/domain/crypto/envelope.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../src/domain/errors.js";
import { clientSecretBinding, createIntegrationService } from "../../src/domain/integrations/integration-service.js";
import type { CredentialCheck, Integration, IntegrationInput } from "../../src/domain/integrations/integrations.js";
import type { IntegrationStore } from "../../src/domain/integrations/ports.js";
import type { PageRequest } from "../../src/domain/paging.js";
import { asRoomkeyError, errorOf, fakeClock, rejectionOf } from "../helpers/fakes.js";

class FakeIntegrationStore implements IntegrationStore {
  readonly records = new Map<string, Integration>();
  writes = 0;

  private static id(environment: string, name: string): string {
    return `${environment}/${name}`;
  }

  async get(environment: string, name: string): Promise<Integration | undefined> {
    const found = this.records.get(FakeIntegrationStore.id(environment, name));
    return found && structuredClone(found);
  }

  async insert(environment: string, integration: Integration): Promise<boolean> {
    const id = FakeIntegrationStore.id(environment, integration.name);
    if (this.records.has(id)) return false;
    this.writes++;
    this.records.set(id, structuredClone(integration));
    return true;
  }

  async replace(environment: string, integration: Integration, expectedVersion: number): Promise<boolean> {
    const id = FakeIntegrationStore.id(environment, integration.name);
    if (this.records.get(id)?.version !== expectedVersion) return false;
    this.writes++;
    this.records.set(id, structuredClone(integration));
    return true;
  }

  async list(environment: string, page: PageRequest): Promise<Integration[]> {
    return [...this.records.entries()]
      .filter(([id]) => id.startsWith(`${environment}/`))
      .map(([, integration]) => structuredClone(integration))
      .filter((i) => page.after === undefined || i.name > page.after)
      .sort((a, b) => a.name.localeCompare(b.name))
      .slice(0, page.size + 1);
  }

  async remove(environment: string, name: string): Promise<boolean> {
    return this.records.delete(FakeIntegrationStore.id(environment, name));
  }

  stored(environment: string, name: string): Integration {
    const found = this.records.get(FakeIntegrationStore.id(environment, name));
    if (!found) throw new Error(`no integration ${environment}/${name}`);
    return found;
  }
}

const dataKeys = new Map([
  ["env-a", randomBytes(32)],
  ["env-b", randomBytes(32)],
]);

function keyOf(environment: string): Buffer {
  const key = dataKeys.get(environment);
  if (!key) throw new Error(`no data key for ${environment}`);
  return key;
}

/** URLs whose host contains "internal" are refused, as the outbound guard would refuse a private address. */
function fakeDestinations() {
  const checked: string[] = [];
  return {
    checked,
    async check(url: string) {
      checked.push(url);
      return new URL(url).hostname.includes("internal")
        ? { allowed: false as const, why: `"${new URL(url).hostname}" resolves to a private address` }
        : { allowed: true as const };
    },
  };
}

function setup(activeAccounts = 0) {
  const store = new FakeIntegrationStore();
  const countCalls: [string, string | undefined][] = [];
  const destinations = fakeDestinations();
  const service = createIntegrationService({
    store,
    accounts: {
      async countActive(environment, integration) {
        countCalls.push([environment, integration]);
        return activeAccounts;
      },
    },
    keys: { dataKey: async (environment) => keyOf(environment) },
    destinations,
    clock: fakeClock(),
  });
  return { service, store, countCalls, destinations };
}

const bearerCheck: CredentialCheck = {
  url: "https://api.example.com/me",
  method: "GET",
  placement: "bearer",
  parameterName: "",
  accountIdPath: "id",
  accountNamePath: "login",
};

function oauthInput(clientSecret: string, overrides: Partial<IntegrationInput> = {}): IntegrationInput {
  return {
    name: "github",
    displayName: "GitHub",
    authType: "oauth2",
    oauth2: {
      authorizationUrl: "https://github.com/login/oauth/authorize",
      tokenUrl: "https://github.com/login/oauth/access_token",
      clientId: "client-id",
      clientSecret,
      scopes: ["repo"],
      pkce: true,
      clientAuthMethod: "client_secret_basic",
      authorizationParams: {},
      scopeSeparator: " ",
    },
    credentialCheck: bearerCheck,
    ...overrides,
  };
}

function apiKeyInput(check: Partial<CredentialCheck>, authType: IntegrationInput["authType"] = "api_key") {
  const input: IntegrationInput = {
    name: "stripe",
    displayName: "Stripe",
    authType,
    credentialCheck: { ...bearerCheck, ...check },
  };
  return input;
}

const secret = "super-secret-client-value";

describe("put", () => {
  it("when an OAuth2 integration is put, then its client secret is stored only sealed for that integration", async () => {
    const { service, store } = setup();

    const { integration, created } = await service.put("env-a", oauthInput(secret));

    expect(created).toBe(true);
    const stored = store.stored("env-a", "github");
    expect(JSON.stringify(stored)).not.toContain(secret);
    const sealed = stored.oauth2?.sealedClientSecret;
    if (sealed === undefined) throw new Error("the client secret was not stored");
    expect(open(keyOf("env-a"), sealed, clientSecretBinding("env-a", "github")).toString()).toBe(secret);
    expect(errorOf(() => open(keyOf("env-a"), sealed, clientSecretBinding("env-a", "gitlab")))).toBeInstanceOf(
      DecryptionError,
    );
    expect(errorOf(() => open(keyOf("env-a"), sealed, clientSecretBinding("env-b", "github")))).toBeInstanceOf(
      DecryptionError,
    );
    expect(JSON.stringify(integration)).not.toContain(secret);
    expect(JSON.stringify(integration)).not.toContain(sealed);
    expect(integration.oauth2?.clientSecretSet).toBe(true);
  });

  it("when the integration is replaced with an empty client secret, then the sealed secret is kept", async () => {
    const { service, store } = setup();
    await service.put("env-a", oauthInput(secret));
    const sealedBefore = store.stored("env-a", "github").oauth2?.sealedClientSecret;

    const { integration, created } = await service.put("env-a", oauthInput("", { displayName: "GitHub 2" }));

    expect(created).toBe(false);
    expect(integration.displayName).toBe("GitHub 2");
    expect(integration.oauth2?.clientSecretSet).toBe(true);
    const stored = store.stored("env-a", "github");
    expect(stored.version).toBe(2);
    expect(sealedBefore).toBeDefined();
    expect(stored.oauth2?.sealedClientSecret).toBe(sealedBefore);
  });

  it("when the integration is replaced with a new client secret, then the new one is sealed", async () => {
    const { service, store } = setup();
    await service.put("env-a", oauthInput(secret));

    await service.put("env-a", oauthInput("another-secret"));

    const sealed = store.stored("env-a", "github").oauth2?.sealedClientSecret ?? "";
    expect(open(keyOf("env-a"), sealed, clientSecretBinding("env-a", "github")).toString()).toBe("another-secret");
  });

  it("when a new OAuth2 integration has no client secret, then none is stored", async () => {
    const { service, store } = setup();
    const { integration } = await service.put("env-a", oauthInput(""));
    expect(integration.oauth2?.clientSecretSet).toBe(false);
    expect(store.stored("env-a", "github").oauth2).not.toHaveProperty("sealedClientSecret");
  });

  it("when a replace keeps createTime, then only updateTime and version move", async () => {
    const { service, store } = setup();
    await service.put("env-a", apiKeyInput({}));
    const first = store.stored("env-a", "stripe");

    await service.put("env-a", apiKeyInput({ url: "https://api.stripe.com/v1/account" }));

    const second = store.stored("env-a", "stripe");
    expect(second.createTime).toEqual(first.createTime);
    expect(second.version).toBe(first.version + 1);
    expect(second.credentialCheck.url).toBe("https://api.stripe.com/v1/account");
  });

  it.each([
    ["api_key", "basic"],
    ["oauth2", "basic"],
    ["basic", "bearer"],
    ["basic", "header"],
    ["basic", "query"],
  ] as const)(
    "when auth type %s uses placement %s, then credential_check.placement is refused",
    async (authType, placement) => {
      const { service, store } = setup();
      const input = authType === "oauth2" ? oauthInput(secret) : apiKeyInput({}, authType);
      input.credentialCheck = { ...input.credentialCheck, placement, parameterName: "X-Api-Key" };

      const error = await rejectionOf(service.put("env-a", input));

      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(asRoomkeyError(error).fieldViolations.map((v) => v.field)).toEqual([
        "integration.credential_check.placement",
      ]);
      expect(store.writes).toBe(0);
    },
  );

  it.each(["header", "query"] as const)(
    "when placement %s has no parameter name, then credential_check.parameter_name is refused",
    async (placement) => {
      const { service, store } = setup();

      const error = await rejectionOf(service.put("env-a", apiKeyInput({ placement, parameterName: "" })));

      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(asRoomkeyError(error).fieldViolations.map((v) => v.field)).toEqual([
        "integration.credential_check.parameter_name",
      ]);
      expect(store.writes).toBe(0);
    },
  );

  it("when placement header has a parameter name, then the integration is stored", async () => {
    const { service, store } = setup();
    await service.put("env-a", apiKeyInput({ placement: "header", parameterName: "X-Api-Key" }));
    expect(store.stored("env-a", "stripe").credentialCheck.parameterName).toBe("X-Api-Key");
  });

  it("when a non-OAuth2 integration carries OAuth2 settings, then integration.oauth2 is refused", async () => {
    const { service, store } = setup();
    const input = oauthInput(secret, { authType: "api_key" });
    const error = asRoomkeyError(await rejectionOf(service.put("env-a", input)));
    expect(error.fieldViolations.map((v) => v.field)).toEqual(["integration.oauth2"]);
    expect(store.writes).toBe(0);
  });

  it("when the credential check URL is refused by the outbound guard, then credential_check.url is named and nothing is stored", async () => {
    const { service, store } = setup();

    const error = asRoomkeyError(
      await rejectionOf(service.put("env-a", apiKeyInput({ url: "http://db.internal:8080/me" }))),
    );

    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.fieldViolations).toEqual([
      {
        field: "integration.credential_check.url",
        description: 'roomkey does not call this URL: "db.internal" resolves to a private address',
      },
    ]);
    expect(store.writes).toBe(0);
  });

  it("when the OAuth token URL is refused by the outbound guard, then oauth2.token_url is named and nothing is stored", async () => {
    const { service, store } = setup();
    const input = oauthInput(secret);
    if (input.oauth2) input.oauth2.tokenUrl = "http://auth.internal/token";

    const error = asRoomkeyError(await rejectionOf(service.put("env-a", input)));

    expect(error.fieldViolations.map((v) => v.field)).toEqual(["integration.oauth2.token_url"]);
    expect(store.writes).toBe(0);
  });

  it("when an OAuth2 integration is put, then the URLs roomkey calls are checked and the browser's authorization URL is not", async () => {
    const { service, destinations } = setup();
    const input = oauthInput(secret);
    if (input.oauth2) input.oauth2.authorizationUrl = "http://login.internal/authorize";

    await service.put("env-a", input);

    expect(destinations.checked.sort()).toEqual([
      "https://api.example.com/me",
      "https://github.com/login/oauth/access_token",
    ]);
  });
});

describe("remove", () => {
  it("when the integration has active accounts and force is off, then INTEGRATION_HAS_ACTIVE_ACCOUNTS and it stays", async () => {
    const { service, store, countCalls } = setup(3);
    await service.put("env-a", apiKeyInput({}));

    const error = await rejectionOf(service.remove("env-a", "stripe", false));

    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect(asRoomkeyError(error)).toMatchObject({
      reason: "INTEGRATION_HAS_ACTIVE_ACCOUNTS",
      metadata: { environment: "env-a", integration: "stripe", active_accounts: "3" },
    });
    expect(countCalls).toEqual([["env-a", "stripe"]]);
    expect(store.records.size).toBe(1);
  });

  it("when the integration has active accounts and force is on, then it is removed", async () => {
    const { service, store } = setup(3);
    await service.put("env-a", apiKeyInput({}));

    await service.remove("env-a", "stripe", true);

    expect(store.records.size).toBe(0);
  });

  it("when the integration has no active accounts, then it is removed without force", async () => {
    const { service, store } = setup(0);
    await service.put("env-a", apiKeyInput({}));

    await service.remove("env-a", "stripe", false);

    expect(store.records.size).toBe(0);
  });

  it("when the integration does not exist, then INTEGRATION_NOT_FOUND", async () => {
    const { service } = setup();
    const error = await rejectionOf(service.remove("env-a", "stripe", true));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(asRoomkeyError(error).reason).toBe("INTEGRATION_NOT_FOUND");
  });

  it("when an integration of the same name lives in another environment, then it is untouched", async () => {
    const { service, store } = setup();
    await service.put("env-a", apiKeyInput({}));
    await service.put("env-b", apiKeyInput({}));

    await service.remove("env-a", "stripe", false);

    expect(store.stored("env-b", "stripe").name).toBe("stripe");
    expect(await rejectionOf(service.get("env-a", "stripe"))).toBeInstanceOf(NotFoundError);
  });
});

describe("get and list", () => {
  it("when an integration is read back, then it shows whether a secret is set but never the secret", async () => {
    const { service } = setup();
    await service.put("env-a", oauthInput(secret));

    const view = await service.get("env-a", "github");

    expect(view.oauth2?.clientSecretSet).toBe(true);
    expect(view.oauth2).not.toHaveProperty("sealedClientSecret");
    expect(view.oauth2).not.toHaveProperty("clientSecret");
  });

  it("when listing with a page size, then views come back with the key to continue after", async () => {
    const { service } = setup();
    await service.put("env-a", oauthInput(secret));
    await service.put("env-a", apiKeyInput({}));
    await service.put("env-a", { ...apiKeyInput({}), name: "twilio" });

    const page = await service.list("env-a", { after: undefined, size: 2 });

    expect(page.items.map((i) => i.name)).toEqual(["github", "stripe"]);
    expect(page.nextAfter).toBe("stripe");
    expect(JSON.stringify(page)).not.toContain("sealedClientSecret");
  });
});
