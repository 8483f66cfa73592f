import type { Clock } from "../clock.js";
import { bindingFor, seal } from "../crypto/envelope.js";
import { ConcurrentModificationError, FailedPreconditionError, invalidField, NotFoundError } from "../errors.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import { type Integration, type IntegrationInput, type IntegrationView, toView } from "./integrations.js";
import type { DataKeySource, IntegrationAccountCounter, IntegrationStore, OutboundDestinations } from "./ports.js";

export interface IntegrationServiceDeps {
  store: IntegrationStore;
  accounts: IntegrationAccountCounter;
  keys: DataKeySource;
  destinations: OutboundDestinations;
  clock: Clock;
}

export type IntegrationService = ReturnType<typeof createIntegrationService>;

export function integrationNotFound(environment: string, name: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "INTEGRATION_NOT_FOUND",
    `integration "${name}" does not exist in environment "${environment}"`,
    { environment, integration: name },
  );
}

/** Where a sealed client secret belongs: it opens nowhere else. */
export function clientSecretBinding(environment: string, integration: string): string {
  return bindingFor(environment, "integration", integration, "client_secret");
}

const placementsFor = {
  api_key: ["bearer", "header", "query"],
  basic: ["basic"],
  oauth2: ["bearer", "header", "query"],
} as const;

function checkConsistency(input: IntegrationInput): void {
  const allowed: readonly string[] = placementsFor[input.authType];
  if (!allowed.includes(input.credentialCheck.placement)) {
    throw invalidField(
      "integration.credential_check.placement",
      `must be one of ${allowed.map((p) => `CREDENTIAL_PLACEMENT_${p.toUpperCase()}`).join(", ")} for this auth_type`,
    );
  }
  const { placement, parameterName } = input.credentialCheck;
  if ((placement === "header" || placement === "query") && parameterName === "") {
    throw invalidField("integration.credential_check.parameter_name", "is required for HEADER and QUERY placement");
  }
  if (input.authType !== "oauth2" && input.oauth2) {
    throw invalidField("integration.oauth2", "must be empty unless auth_type is AUTH_TYPE_OAUTH2");
  }
}

/** Refuses a URL roomkey would call when the outbound guard would refuse it, naming its field. */
async function checkDestinations(destinations: OutboundDestinations, input: IntegrationInput): Promise<void> {
  const called: [field: string, url: string][] = [["integration.credential_check.url", input.credentialCheck.url]];
  // The authorization URL is opened by the user's browser, never by roomkey.
  if (input.oauth2) called.push(["integration.oauth2.token_url", input.oauth2.tokenUrl]);
  if (input.oauth2?.revocationUrl) called.push(["integration.oauth2.revocation_url", input.oauth2.revocationUrl]);
  const checks = await Promise.all(called.map(([, url]) => destinations.check(url)));
  checks.forEach((check, i) => {
    const [field] = called[i] as [string, string];
    if (!check.allowed) throw invalidField(field, `roomkey does not call this URL: ${check.why}`);
  });
}

/** Integrations of an environment, with client secrets sealed under its data key. */
export function createIntegrationService(deps: IntegrationServiceDeps) {
  const { store, accounts, keys, destinations, clock } = deps;

  async function sealSecret(environment: string, name: string, secret: string): Promise<string> {
    return seal(await keys.dataKey(environment), secret, clientSecretBinding(environment, name));
  }

  async function build(environment: string, input: IntegrationInput, previous: Integration | undefined) {
    const now = clock.now();
    let oauth2: Integration["oauth2"];
    if (input.oauth2) {
      const { clientSecret, ...settings } = input.oauth2;
      const sealedClientSecret =
        clientSecret !== ""
          ? await sealSecret(environment, input.name, clientSecret)
          : previous?.oauth2?.sealedClientSecret;
      oauth2 = sealedClientSecret === undefined ? settings : { ...settings, sealedClientSecret };
    }
    const record: Integration = {
      name: input.name,
      displayName: input.displayName,
      authType: input.authType,
      credentialCheck: input.credentialCheck,
      createTime: previous?.createTime ?? now,
      updateTime: now,
      version: (previous?.version ?? 0) + 1,
    };
    if (oauth2) record.oauth2 = oauth2;
    return record;
  }

  /** Creates or replaces; an empty client secret keeps the stored one. */
  async function put(
    environment: string,
    input: IntegrationInput,
  ): Promise<{ integration: IntegrationView; created: boolean }> {
    checkConsistency(input);
    await checkDestinations(destinations, input);
    for (let attempt = 0; attempt < 5; attempt++) {
      const previous = await store.get(environment, input.name);
      const record = await build(environment, input, previous);
      const written = previous
        ? await store.replace(environment, record, previous.version)
        : await store.insert(environment, record);
      if (written) return { integration: toView(record), created: previous === undefined };
    }
    throw new ConcurrentModificationError(`integration "${input.name}"`);
  }

  async function get(environment: string, name: string): Promise<IntegrationView> {
    const found = await store.get(environment, name);
    if (!found) throw integrationNotFound(environment, name);
    return toView(found);
  }

  async function list(environment: string, page: PageRequest): Promise<Page<IntegrationView>> {
    const items = await store.list(environment, page);
    const result = toPage(items, page.size, (i) => i.name);
    return { items: result.items.map(toView), nextAfter: result.nextAfter };
  }

  async function remove(environment: string, name: string, force: boolean): Promise<void> {
    if (!(await store.get(environment, name))) throw integrationNotFound(environment, name);
    if (!force) {
      const active = await accounts.countActive(environment, name);
      if (active > 0) {
        throw new FailedPreconditionError(
          "failed_precondition",
          "INTEGRATION_HAS_ACTIVE_ACCOUNTS",
          `integration "${name}" has ${active} active account(s); disconnect them or delete with force`,
          { environment, integration: name, active_accounts: String(active) },
        );
      }
    }
    if (!(await store.remove(environment, name))) throw integrationNotFound(environment, name);
  }

  return { put, get, list, remove };
}
