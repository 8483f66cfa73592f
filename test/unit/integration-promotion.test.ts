import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { open, seal } from "../../src/domain/crypto/envelope.js";
import {
  comparedFields,
  createIntegrationPromotion,
  diffPageSize,
  type IntegrationPromotionDeps,
  type PromotionRequest,
  type PromotionSummary,
} from "../../src/domain/integrations/integration-promotion.js";
import { clientSecretBinding } from "../../src/domain/integrations/integration-service.js";
import type { Integration } from "../../src/domain/integrations/integrations.js";
import type { IntegrationStore } from "../../src/domain/integrations/ports.js";
import type { PageRequest } from "../../src/domain/paging.js";
import {
  CredentialCheckSchema,
  IntegrationSchema,
  OAuth2ConfigSchema,
} from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { fieldDifferenceToProto } from "../../src/rpc/mappers/promotion-mapper.js";
import { asRoomkeyError, fakeClock, rejectionOf } from "../helpers/fakes.js";

/** Integrations of several environments in memory; can be told to fail after some writes, like a crash. */
class FakeIntegrationStore implements IntegrationStore {
  readonly records = new Map<string, Integration>();
  writes = 0;
  lists = 0;
  /** Writes allowed before every further write throws (a process dying half-way). */
  failAfterWrites = Number.POSITIVE_INFINITY;
  /** Called before a replace is applied: a concurrent writer can act here. */
  beforeReplace: (() => void) | undefined;

  private static id(environment: string, name: string): string {
    return `${environment}/${name}`;
  }

  async get(environment: string, name: string): Promise<Integration | undefined> {
    const found = this.records.get(FakeIntegrationStore.id(environment, name));
    return found && structuredClone(found);
  }

  private write(environment: string, integration: Integration): void {
    if (this.writes >= this.failAfterWrites) throw new Error("the process died");
    this.writes++;
    this.records.set(FakeIntegrationStore.id(environment, integration.name), structuredClone(integration));
  }

  async insert(environment: string, integration: Integration): Promise<boolean> {
    if (this.records.has(FakeIntegrationStore.id(environment, integration.name))) return false;
    this.write(environment, integration);
    return true;
  }

  async replace(environment: string, integration: Integration, expectedVersion: number): Promise<boolean> {
    const hook = this.beforeReplace;
    this.beforeReplace = undefined;
    hook?.();
    if (this.records.get(FakeIntegrationStore.id(environment, integration.name))?.version !== expectedVersion) {
      return false;
    }
    this.write(environment, integration);
    return true;
  }

  async list(environment: string, page: PageRequest): Promise<Integration[]> {
    this.lists++;
    return [...this.records.entries()]
      .filter(([id]) => id.startsWith(`${environment}/`))
      .map(([, integration]) => structuredClone(integration))
      .filter((i) => page.after === undefined || i.name > page.after)
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .slice(0, page.size + 1);
  }

  async remove(environment: string, name: string): Promise<boolean> {
    return this.records.delete(FakeIntegrationStore.id(environment, name));
  }

  snapshot(environment: string): Map<string, Integration> {
    return new Map(
      [...this.records.entries()]
        .filter(([id]) => id.startsWith(`${environment}/`))
        .map(([, i]) => [i.name, structuredClone(i)]),
    );
  }
}

const dataKeys = new Map([
  ["staging", randomBytes(32)],
  ["production", randomBytes(32)],
  ["qa", randomBytes(32)],
]);

function keyOf(environment: string): Buffer {
  const key = dataKeys.get(environment);
  if (!key) throw new Error(`no key for ${environment}`);
  return key;
}

const sealFor = (environment: string, name: string, secret: string) =>
  seal(keyOf(environment), secret, clientSecretBinding(environment, name));
const openIn = (environment: string, integration: Integration | undefined) =>
  open(
    keyOf(environment),
    integration?.oauth2?.sealedClientSecret ?? "none",
    clientSecretBinding(environment, integration?.name ?? ""),
  ).toString();

const created = new Date(Date.UTC(2029, 5, 1));

function apiKey(name: string, overrides: Partial<Integration> = {}): Integration {
  return {
    name,
    displayName: `${name} API`,
    authType: "api_key",
    credentialCheck: {
      url: `https://${name}.example/me`,
      method: "GET",
      placement: "bearer",
      parameterName: "",
      accountIdPath: "id",
      accountNamePath: "name",
    },
    createTime: created,
    updateTime: created,
    version: 1,
    ...overrides,
  };
}

function oauth(
  environment: string,
  name: string,
  secret: string | undefined,
  settings: Partial<NonNullable<Integration["oauth2"]>> = {},
  overrides: Partial<Integration> = {},
): Integration {
  return {
    ...apiKey(name),
    displayName: `${name} OAuth`,
    authType: "oauth2",
    oauth2: {
      authorizationUrl: `https://${name}.example/authorize`,
      tokenUrl: `https://${name}.example/token`,
      clientId: `${environment}-client`,
      scopes: ["read", "write"],
      pkce: true,
      clientAuthMethod: "client_secret_basic",
      authorizationParams: { access_type: "offline", prompt: "consent" },
      scopeSeparator: " ",
      ...(secret === undefined ? {} : { sealedClientSecret: sealFor(environment, name, secret) }),
      ...settings,
    },
    ...overrides,
  };
}

function setup(options: { refuse?: string; onPromoted?: (s: PromotionSummary) => void } = {}) {
  const store = new FakeIntegrationStore();
  const put = (environment: string, integration: Integration) =>
    store.records.set(`${environment}/${integration.name}`, structuredClone(integration));
  const deps: IntegrationPromotionDeps = {
    store,
    keys: { dataKey: async (environment) => keyOf(environment) },
    destinations: {
      check: async (url) =>
        options.refuse && url.includes(options.refuse)
          ? { allowed: false, why: "a private address" }
          : { allowed: true },
    },
    environments: { find: async (name) => (dataKeys.has(name) ? { name } : undefined) },
    fingerprintKey: randomBytes(32),
    clock: fakeClock(),
    ...(options.onPromoted ? { onPromoted: options.onPromoted } : {}),
  };
  return { store, put, promotion: createIntegrationPromotion(deps) };
}

const firstPage = { after: undefined, size: 100 };
const request = (overrides: Partial<PromotionRequest> = {}): PromotionRequest => ({
  from: "staging",
  names: [],
  all: true,
  dryRun: false,
  keep: [],
  ...overrides,
});

/** The fields a diff or promotion shows, as the API renders them. */
const shown = (fields: Parameters<typeof fieldDifferenceToProto>[0][]) => fields.map(fieldDifferenceToProto);

describe("DiffIntegrations", () => {
  it("when integrations exist in one environment, the other or both, then each is listed by name with its kind and only differing fields", async () => {
    const { put, promotion } = setup();
    put("staging", apiKey("alpha"));
    put("staging", oauth("staging", "crm", "s3cret-staging", { scopes: ["read", "write", "admin"] }));
    put("staging", apiKey("same"));
    put("production", apiKey("same"));
    put("production", oauth("production", "crm", "s3cret-production"));
    put("production", apiKey("zulu"));

    const page = await promotion.diff("production", { from: "staging", includeSame: false, page: firstPage });
    expect(page.nextAfter).toBeUndefined();
    expect(page.items.map((i) => [i.name, i.kind])).toEqual([
      ["alpha", "only_in_from"],
      ["crm", "different"],
      ["zulu", "only_in_to"],
    ]);
    const crm = page.items[1];
    expect(shown(crm?.fields ?? [])).toEqual([
      { field: "oauth2.client_id", fromValue: '"staging-client"', toValue: '"production-client"', secret: false },
      { field: "oauth2.client_secret", fromValue: "", toValue: "", secret: true },
      { field: "oauth2.scopes", fromValue: '["read","write","admin"]', toValue: '["read","write"]', secret: false },
    ]);
    // An integration in one environment: the fields it sets, with the other side empty.
    const alpha = shown(page.items[0]?.fields ?? []);
    expect(alpha.map((f) => f.field)).toEqual([
      "auth_type",
      "credential_check.account_id_path",
      "credential_check.account_name_path",
      "credential_check.method",
      "credential_check.placement",
      "credential_check.url",
      "display_name",
    ]);
    expect(alpha[0]).toEqual({ field: "auth_type", fromValue: '"AUTH_TYPE_API_KEY"', toValue: "", secret: false });
    expect(alpha[4]?.fromValue).toBe('"CREDENTIAL_PLACEMENT_BEARER"');
    expect(shown(page.items[2]?.fields ?? [])[0]).toEqual({
      field: "auth_type",
      fromValue: "",
      toValue: '"AUTH_TYPE_API_KEY"',
      secret: false,
    });

    const all = await promotion.diff("production", { from: "staging", includeSame: true, page: firstPage });
    expect(all.items.map((i) => [i.name, i.kind])).toContainEqual(["same", "same"]);
    expect(all.items.find((i) => i.name === "same")?.fields).toEqual([]);
  });

  it("when maps, enums, booleans and optional fields differ, then each is one field rendered as canonical JSON", async () => {
    const { put, promotion } = setup();
    put(
      "staging",
      oauth("staging", "crm", "same-secret", {
        clientId: "one",
        authorizationParams: { prompt: "consent", access_type: "offline", audience: "api" },
        clientAuthMethod: "client_secret_post",
        disablePkce: true,
        issuer: "https://login.crm.example",
      }),
    );
    put(
      "production",
      oauth("production", "crm", "same-secret", {
        clientId: "one",
        authorizationParams: { access_type: "online", prompt: "consent" },
        revocationUrl: "https://crm.example/revoke",
      }),
    );
    const [crm] = (await promotion.diff("production", { from: "staging", includeSame: false, page: firstPage })).items;
    expect(shown(crm?.fields ?? [])).toEqual([
      {
        field: "oauth2.authorization_params",
        fromValue: '{"access_type":"offline","audience":"api","prompt":"consent"}',
        toValue: '{"access_type":"online","prompt":"consent"}',
        secret: false,
      },
      {
        field: "oauth2.client_auth_method",
        fromValue: '"CLIENT_AUTH_METHOD_CLIENT_SECRET_POST"',
        toValue: '"CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC"',
        secret: false,
      },
      { field: "oauth2.disable_pkce", fromValue: "true", toValue: "", secret: false },
      { field: "oauth2.issuer", fromValue: '"https://login.crm.example"', toValue: "", secret: false },
      { field: "oauth2.revocation_url", fromValue: "", toValue: '"https://crm.example/revoke"', secret: false },
    ]);
  });

  it("when the contract's Integration has a field, then the diff compares it, unless it is output only, the key, or the legacy pkce flag", () => {
    const notCompared = new Set(["name", "create_time", "update_time", "oauth2.client_secret_set", "oauth2.pkce"]);
    const paths = [
      ...IntegrationSchema.fields.filter((f) => f.message === undefined).map((f) => f.name),
      ...OAuth2ConfigSchema.fields.map((f) => `oauth2.${f.name}`),
      ...CredentialCheckSchema.fields.map((f) => `credential_check.${f.name}`),
    ].filter((path) => !notCompared.has(path));
    expect([...comparedFields]).toEqual(paths.sort());
  });

  it("when only the token URL differs, then the diff says so and a promotion writes it", async () => {
    const { put, store, promotion } = setup();
    put("staging", oauth("staging", "crm", "s", { clientId: "one", tokenUrl: "https://crm.example/v2/token" }));
    put("production", oauth("production", "crm", "s", { clientId: "one" }));
    const [crm] = (await promotion.diff("production", { from: "staging", includeSame: false, page: firstPage })).items;
    expect([crm?.kind, shown(crm?.fields ?? [])]).toEqual([
      "different",
      [
        {
          field: "oauth2.token_url",
          fromValue: '"https://crm.example/v2/token"',
          toValue: '"https://crm.example/token"',
          secret: false,
        },
      ],
    ]);
    const {
      promotions: [promoted],
    } = await promotion.promote("production", request({ names: ["crm"], all: false }));
    expect(promoted?.action).toBe("update");
    expect(store.records.get("production/crm")?.oauth2?.tokenUrl).toBe("https://crm.example/v2/token");
  });

  it("when most integrations are the same, then a page looks at a bounded number of names and its token goes on", async () => {
    const { put, promotion } = setup();
    for (let i = 0; i < 45; i++) {
      const name = `same${String(i).padStart(2, "0")}`;
      put("staging", apiKey(name));
      put("production", apiKey(name));
    }
    put("staging", apiKey("zeta"));
    const page = { after: undefined, size: 2 };
    const first = await promotion.diff("production", { from: "staging", includeSame: false, page });
    expect([first.items.length, first.nextAfter]).toEqual([0, "same19"]);
    let after = first.nextAfter;
    const found: string[] = [];
    for (let calls = 0; after !== undefined && calls < 10; calls++) {
      const next = await promotion.diff("production", {
        from: "staging",
        includeSame: false,
        page: { after, size: 2 },
      });
      found.push(...next.items.map((i) => i.name));
      after = next.nextAfter;
    }
    expect([found, after]).toEqual([["zeta"], undefined]);
  });

  it("when the same client secret is sealed under each environment's own key, then it is the same; when not, then only 'different' is known", async () => {
    const { put, promotion } = setup();
    put("staging", oauth("staging", "same", "shared-secret-value"));
    put("production", oauth("production", "same", "shared-secret-value", { clientId: "staging-client" }));
    put("staging", oauth("staging", "other", "staging-only-secret"));
    put("production", oauth("production", "other", "production-only-secret", { clientId: "staging-client" }));
    put("staging", oauth("staging", "unset", undefined));
    put("production", oauth("production", "unset", "production-unset-secret", { clientId: "staging-client" }));

    const page = await promotion.diff("production", { from: "staging", includeSame: true, page: firstPage });
    expect(page.items.map((i) => [i.name, i.kind, i.fields.map((f) => f.field)])).toEqual([
      ["other", "different", ["oauth2.client_secret"]],
      ["same", "same", []],
      ["unset", "different", ["oauth2.client_secret"]],
    ]);
    const text = JSON.stringify(page.items.map((i) => shown(i.fields)));
    for (const secret of ["shared-secret-value", "staging-only-secret", "production-only-secret"]) {
      expect(text).not.toContain(secret);
    }
    for (const f of page.items.flatMap((i) => i.fields))
      expect([f.from, f.to, f.secret]).toEqual([undefined, undefined, true]);
  });

  it("when a stored client secret does not open, then DECRYPTION_FAILED names the integration, not 'different'", async () => {
    const { put, promotion } = setup();
    put("staging", oauth("staging", "crm", "a"));
    // Sealed for another environment: its binding does not match production's.
    const foreign = oauth("production", "crm", "a");
    if (foreign.oauth2) foreign.oauth2.sealedClientSecret = sealFor("staging", "crm", "a");
    put("production", foreign);
    const error = asRoomkeyError(
      await rejectionOf(promotion.diff("production", { from: "staging", includeSame: false, page: firstPage })),
    );
    expect(error.reason).toBe("DECRYPTION_FAILED");
    expect(error.metadata).toEqual({ environment: "production", integration: "crm" });
  });

  it("when pages are small and SAME ones are skipped, then pages continue the union in name order without repeats", async () => {
    const { put, promotion } = setup();
    for (const name of ["a1", "a2", "b1", "b2", "c1", "c2", "d1"]) {
      if (!name.startsWith("d")) put("staging", apiKey(name));
      if (!name.startsWith("a")) put("production", apiKey(name, name.endsWith("2") ? { displayName: "other" } : {}));
    }
    put("production", apiKey("d1"));
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await promotion.diff("production", {
        from: "staging",
        includeSame: false,
        page: { after, size: 2 },
      });
      seen.push(...page.items.map((i) => i.name));
      after = page.nextAfter;
      if (after === undefined) break;
      expect(page.items).toHaveLength(2);
    }
    // b1 and c1 are the same in both: skipped, and a page is filled past them.
    expect(seen).toEqual(["a1", "a2", "b2", "c2", "d1"]);
  });

  it("when from_environment is malformed, the call's own, or unknown, then the error names it", async () => {
    const { store, promotion } = setup();
    const diff = (from: string) =>
      rejectionOf(promotion.diff("production", { from, includeSame: false, page: firstPage })).then(asRoomkeyError);
    const bad = await diff("Staging");
    expect([bad.kind, bad.reason, bad.fieldViolations[0]?.field]).toEqual([
      "invalid_argument",
      "ENVIRONMENT_INVALID",
      "from_environment",
    ]);
    const same = await diff("production");
    expect([same.kind, same.reason, same.fieldViolations[0]?.field]).toEqual([
      "invalid_argument",
      "PROMOTION_SAME_ENVIRONMENT",
      "from_environment",
    ]);
    const unknown = await diff("nowhere");
    expect([unknown.kind, unknown.reason, unknown.metadata.field]).toEqual([
      "not_found",
      "ENVIRONMENT_NOT_FOUND",
      "from_environment",
    ]);
    expect(unknown.message).toContain("nowhere");
    expect(store.lists).toBe(0);
  });

  it("when page_size is 0 or too large, then 100 or 500", () => {
    expect([diffPageSize(0), diffPageSize(7), diffPageSize(500), diffPageSize(10_000)]).toEqual([100, 7, 500, 500]);
  });
});

describe("PromoteIntegrations", () => {
  function stagingAndProduction(options: Parameters<typeof setup>[0] = {}) {
    const s = setup(options);
    s.put("staging", apiKey("alpha"));
    s.put("staging", oauth("staging", "crm", "staging-secret", { scopes: ["read", "write", "admin"] }));
    s.put("staging", apiKey("keyed", { displayName: "Keyed v2" }));
    s.put("production", oauth("production", "crm", "production-secret", {}, { version: 4 }));
    s.put("production", apiKey("keyed", { version: 2 }));
    s.put("production", apiKey("prod-only"));
    return s;
  }

  it("when promoting all, then new ones are created, changed ones updated, secrets resealed for the target, and target-only ones left alone", async () => {
    const { store, promotion } = stagingAndProduction();
    const result = await promotion.promote("production", request());
    expect(result.promotions.map((p) => [p.name, p.action])).toEqual([
      ["alpha", "create"],
      ["crm", "update"],
      ["keyed", "update"],
    ]);
    expect(result.promotions[2]?.changes.map((c) => c.field)).toEqual(["display_name"]);
    const crm = await store.get("production", "crm");
    expect(crm?.oauth2?.clientId).toBe("staging-client");
    expect(crm?.oauth2?.scopes).toEqual(["read", "write", "admin"]);
    expect(crm?.version).toBe(5);
    expect(crm?.createTime).toEqual(created);
    // Opened with production's key and binding: the staging secret, sealed anew.
    expect(openIn("production", crm)).toBe("staging-secret");
    expect(crm?.oauth2?.sealedClientSecret).not.toBe(store.snapshot("staging").get("crm")?.oauth2?.sealedClientSecret);
    expect(await store.get("production", "prod-only")).toEqual(apiKey("prod-only"));
    const after = await promotion.diff("production", { from: "staging", includeSame: false, page: firstPage });
    expect(after.items.map((i) => [i.name, i.kind])).toEqual([["prod-only", "only_in_to"]]);
  });

  it("when promoting again, then every integration is UNCHANGED and nothing is written", async () => {
    const { store, promotion } = stagingAndProduction();
    await promotion.promote("production", request({ keep: ["oauth2.client_id", "oauth2.client_secret"] }));
    const writes = store.writes;
    const before = store.snapshot("production");
    const again = await promotion.promote(
      "production",
      request({ keep: ["oauth2.client_id", "oauth2.client_secret"] }),
    );
    expect(again.promotions.map((p) => p.action)).toEqual(["unchanged", "unchanged", "unchanged"]);
    expect(again.promotions.flatMap((p) => p.changes)).toEqual([]);
    expect(store.writes).toBe(writes);
    expect(store.snapshot("production")).toEqual(before);
    const plain = await promotion.promote("production", request({ names: ["keyed"], all: false }));
    expect(plain.promotions.map((p) => p.action)).toEqual(["unchanged"]);
  });

  it("when the target keeps its OAuth client id and secret, then those stay the target's and everything else is the source's", async () => {
    const { store, promotion } = stagingAndProduction();
    const before = await store.get("production", "crm");
    const result = await promotion.promote(
      "production",
      request({ names: ["crm"], all: false, keep: ["oauth2.client_id", "oauth2.client_secret"] }),
    );
    expect(result.promotions).toEqual([
      {
        name: "crm",
        action: "update",
        changes: [{ field: "oauth2.scopes", from: ["read", "write", "admin"], to: ["read", "write"], secret: false }],
      },
    ]);
    const crm = await store.get("production", "crm");
    expect(crm?.oauth2?.clientId).toBe("production-client");
    expect(crm?.oauth2?.sealedClientSecret).toBe(before?.oauth2?.sealedClientSecret);
    expect(openIn("production", crm)).toBe("production-secret");
  });

  it("when an API-key integration is promoted with OAuth fields kept, then the keep does not apply to it", async () => {
    const { store, promotion } = stagingAndProduction();
    const result = await promotion.promote(
      "production",
      request({ names: ["alpha"], all: false, keep: ["oauth2.client_id"] }),
    );
    expect(result.promotions.map((p) => p.action)).toEqual(["create"]);
    expect((await store.get("production", "alpha"))?.oauth2).toBeUndefined();
  });

  it("when a dry run is asked, then the same plan comes back and nothing is written", async () => {
    const { store, promotion } = stagingAndProduction();
    const before = store.snapshot("production");
    const dry = await promotion.promote("production", request({ dryRun: true }));
    expect(dry.dryRun).toBe(true);
    expect(store.writes).toBe(0);
    expect(store.snapshot("production")).toEqual(before);
    const real = await promotion.promote("production", request());
    expect(real.dryRun).toBe(false);
    expect(real.promotions).toEqual(dry.promotions);
  });

  it("when a promotion is refused, then nothing is written, and each error names its cause", async () => {
    const cases: [PromotionRequest, string, string, Record<string, string>?][] = [
      [request({ from: "prod/../x" }), "invalid_argument", "ENVIRONMENT_INVALID"],
      [request({ from: "production" }), "invalid_argument", "PROMOTION_SAME_ENVIRONMENT"],
      [request({ from: "nowhere" }), "not_found", "ENVIRONMENT_NOT_FOUND"],
      [
        request({ names: ["alpha", "ghost"], all: false }),
        "not_found",
        "INTEGRATION_NOT_FOUND",
        { environment: "staging", integration: "ghost" },
      ],
      [request({ keep: ["oauth2.client_id", "auth_type"] }), "invalid_argument", "INVALID_REQUEST"],
      // crm and keyed exist in production, alpha is new there: its client id cannot be kept.
      [
        request({ names: ["crm", "keyed", "alpha"], all: false, keep: ["display_name"] }),
        "failed_precondition",
        "PROMOTION_KEPT_FIELD_MISSING",
        { integration: "alpha", field: "display_name" },
      ],
    ];
    for (const [req, kind, reason, metadata] of cases) {
      const { store, promotion } = stagingAndProduction();
      const error = asRoomkeyError(await rejectionOf(promotion.promote("production", req)));
      expect([error.kind, error.reason], JSON.stringify(req)).toEqual([kind, reason]);
      if (metadata) expect(error.metadata).toEqual(metadata);
      expect(store.writes).toBe(0);
    }
    const { store, promotion } = stagingAndProduction();
    const crmOnly = oauth("staging", "newapp", "x");
    store.records.set("staging/newapp", crmOnly);
    const missing = asRoomkeyError(
      await rejectionOf(
        promotion.promote(
          "production",
          request({ names: ["crm", "newapp"], all: false, keep: ["oauth2.client_secret"] }),
        ),
      ),
    );
    expect(missing.metadata).toEqual({ integration: "newapp", field: "oauth2.client_secret" });
    // An OAuth integration in staging that is an API-key one in production: no OAuth client id there to keep.
    store.records.set("staging/keyed", oauth("staging", "keyed", "x"));
    const switched = asRoomkeyError(
      await rejectionOf(promotion.promote("production", request({ keep: ["oauth2.client_id"] }))),
    );
    expect([switched.reason, switched.metadata]).toEqual([
      "PROMOTION_KEPT_FIELD_MISSING",
      { integration: "keyed", field: "oauth2.client_id" },
    ]);
    expect(store.writes).toBe(0);
  });

  it("when the outbound guard refuses a URL of a promoted integration, then nothing is written and the error names the integration and field", async () => {
    const { store, promotion } = stagingAndProduction({ refuse: "keyed.example" });
    const error = asRoomkeyError(await rejectionOf(promotion.promote("production", request())));
    expect([error.kind, error.metadata]).toEqual([
      "invalid_argument",
      { integration: "keyed", field: "credential_check.url" },
    ]);
    expect(error.fieldViolations[0]?.field).toBe("all");
    expect(store.writes).toBe(0);
  });

  for (const k of [0, 1, 2]) {
    it(`when the process dies after ${k} write(s), then each target integration is whole (before or after), and a rerun finishes with UNCHANGED for what was done`, async () => {
      const reference = stagingAndProduction();
      await reference.promotion.promote("production", request());
      const promotedState = reference.store.snapshot("production");

      const { store, promotion } = stagingAndProduction();
      const before = store.snapshot("production");
      store.failAfterWrites = k;
      await expect(promotion.promote("production", request())).rejects.toThrow("the process died");
      expect(store.writes).toBe(k);
      const now = store.snapshot("production");
      let promotedCount = 0;
      for (const [name, integration] of now) {
        const was = before.get(name);
        const target = promotedState.get(name);
        const asBefore = was !== undefined && JSON.stringify(integration) === JSON.stringify(was);
        const asAfter = target !== undefined && sameIgnoringSealing(integration, target);
        expect(asBefore || asAfter, name).toBe(true);
        if (!asBefore) promotedCount++;
      }
      expect(promotedCount).toBe(k);

      store.failAfterWrites = Number.POSITIVE_INFINITY;
      const rerun = await promotion.promote("production", request());
      expect(rerun.promotions.slice(0, k).map((p) => p.action)).toEqual(Array(k).fill("unchanged"));
      expect(rerun.promotions.slice(k).every((p) => p.action !== "unchanged")).toBe(true);
      const final = store.snapshot("production");
      expect([...final.keys()].sort()).toEqual([...promotedState.keys()].sort());
      for (const [name, integration] of final) {
        expect(sameIgnoringSealing(integration, promotedState.get(name) as Integration), name).toBe(true);
      }
    });
  }

  it("when another writer changes the target between the plan and the write, then the promotion re-reads and writes on the new version", async () => {
    const { store, put, promotion } = stagingAndProduction();
    store.beforeReplace = () => {
      put("production", apiKey("keyed", { version: 3, displayName: "changed meanwhile" }));
    };
    const result = await promotion.promote("production", request({ names: ["keyed"], all: false }));
    expect(result.promotions[0]?.changes).toEqual([
      { field: "display_name", from: "Keyed v2", to: "changed meanwhile", secret: false },
    ]);
    const keyed = await store.get("production", "keyed");
    expect([keyed?.displayName, keyed?.version]).toEqual(["Keyed v2", 4]);
  });

  it("when the target's integration is deleted between the plan and the write of a kept field, then ABORTED, not a promise that nothing was written", async () => {
    const { store, promotion } = stagingAndProduction();
    store.beforeReplace = () => {
      store.records.delete("production/crm");
    };
    const error = asRoomkeyError(
      await rejectionOf(
        promotion.promote("production", request({ keep: ["oauth2.client_id", "oauth2.client_secret"] })),
      ),
    );
    expect([error.kind, error.reason]).toEqual(["aborted", "CONCURRENT_MODIFICATION"]);
    // alpha came first and stays written, whole.
    expect((await store.get("production", "alpha"))?.displayName).toBe("alpha API");
    expect(await store.get("production", "crm")).toBeUndefined();
  });

  it("when a promotion writes, then the summary for the source's audit log names fields, never values", async () => {
    const summaries: PromotionSummary[] = [];
    const { promotion } = stagingAndProduction({ onPromoted: (s) => void summaries.push(s) });
    await promotion.promote("production", request({ dryRun: true }));
    expect(summaries).toEqual([]);
    await promotion.promote("production", request());
    expect(summaries).toHaveLength(1);
    expect(summaries[0]?.from).toBe("staging");
    expect(summaries[0]?.to).toBe("production");
    expect(summaries[0]?.complete).toBe(true);
    expect(summaries[0]?.promotions.find((p) => p.name === "crm")).toEqual({
      name: "crm",
      action: "update",
      fields: ["oauth2.client_id", "oauth2.client_secret", "oauth2.scopes"],
    });
    expect(JSON.stringify(summaries)).not.toMatch(/secret-|staging-client/);
  });
});

/** Equal but for the secret's ciphertext (a fresh nonce each sealing) and the update time: the secrets must open alike. */
function sameIgnoringSealing(a: Integration, b: Integration): boolean {
  const strip = (i: Integration) => {
    const { updateTime: _u, ...rest } = structuredClone(i);
    if (rest.oauth2?.sealedClientSecret) rest.oauth2.sealedClientSecret = openIn("production", i);
    return JSON.stringify(rest);
  };
  return strip(a) === strip(b);
}
