/**
 * The TypeScript scenario that CI runs against a real roomkey
 * (test/integration/clients.test.ts), using only the package's `roomkey/client`
 * entry. docs/clients.md quotes the parts between "snippet:" markers. Needs
 * ROOMKEY_ADDR, ROOMKEY_ADMIN_KEY and SCENARIO_PROVIDER_URL, SCENARIO_GOOD_KEY,
 * SCENARIO_NAME (see the test).
 */
import {
  AccountService,
  AccountStatus,
  AuthType,
  Code,
  CredentialPlacement,
  createRoomkeyClient,
  EnvironmentService,
  ErrorReason,
  errorOf,
  type RoomkeyError,
  TokenService,
} from "roomkey/client";

function fail(message: string): never {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

/** Runs call, which must fail with a roomkey error of this code and reason. */
async function expectError(call: () => Promise<unknown>, code: Code, reason: ErrorReason): Promise<RoomkeyError> {
  try {
    await call();
  } catch (error) {
    const err = errorOf(error);
    if (!err || err.code !== code || err.reason !== reason) {
      fail(`want ${Code[code]} ${ErrorReason[reason]}, got ${String(error)}`);
    }
    return err;
  }
  return fail(`want ${Code[code]}, got OK`);
}

const admin = process.env.ROOMKEY_ADMIN_KEY ?? fail("ROOMKEY_ADMIN_KEY is not set");
const name = process.env.SCENARIO_NAME ?? fail("SCENARIO_NAME is not set");

// A token made in staging opens staging and nothing else.
const stagingAdmin = createRoomkeyClient(TokenService, { environment: "staging", token: admin });
const { secret } = await stagingAdmin.createToken({ name, scopes: ["accounts:read", "tokens:verify"] });
// snippet:node-call
const accounts = createRoomkeyClient(AccountService, { environment: "staging", token: secret });
const listed = await accounts.listAccounts({ pageSize: 10 });
// end-snippet
console.log(`staging token in staging: OK (${listed.accounts.length} accounts)`);
for (const environment of ["development", "production"]) {
  const other = createRoomkeyClient(AccountService, { environment, token: secret });
  // snippet:node-errors
  try {
    await other.listAccounts({});
  } catch (error) {
    const err = errorOf(error);
    if (err?.reason === ErrorReason.TOKEN_WRONG_ENVIRONMENT) {
      console.log(
        `staging token in ${environment}: ${Code[err.code]} ${err.reasonName} (token_environment=${err.metadata.token_environment})`,
      );
    }
  }
  // end-snippet
  await expectError(() => other.listAccounts({}), Code.PermissionDenied, ErrorReason.TOKEN_WRONG_ENVIRONMENT);
}

// A header the call sets itself wins: the staging client asks production.
const perCall = await expectError(
  () => accounts.listAccounts({}, { headers: { "roomkey-environment": "production" } }),
  Code.PermissionDenied,
  ErrorReason.TOKEN_WRONG_ENVIRONMENT,
);
console.log(
  `per-call environment: ${perCall.reasonName} (requested_environment=${perCall.metadata.requested_environment})`,
);

// An API key account connected in development reaches ACTIVE on a watch, and
// exists only there.
await createRoomkeyClient(EnvironmentService, { environment: "development", token: admin }).putIntegration({
  integration: {
    name,
    authType: AuthType.API_KEY,
    credentialCheck: {
      url: `${process.env.SCENARIO_PROVIDER_URL}/me`,
      placement: CredentialPlacement.BEARER,
      accountIdPath: "data.id",
      accountNamePath: "data.profile.name",
    },
  },
});
const devAccounts = createRoomkeyClient(AccountService, { environment: "development", token: admin });
const watching = new AbortController();
// snippet:node-watch
const stream = devAccounts.watchAccounts({ integration: name }, { signal: watching.signal })[Symbol.asyncIterator]();
// end-snippet
async function connect(key: string) {
  // snippet:node-connect
  const { account } = await devAccounts.connectAccount({
    integration: name,
    tenantId: "tenant-42",
    credential: { case: "apiKey", value: { key } },
  });
  // end-snippet
  return account ?? fail("ConnectAccount returned no account");
}
async function settled(id: string) {
  for (;;) {
    const next = await stream.next();
    if (next.done) fail("the watch ended");
    const account = next.value.account;
    if (account?.id === id && account.status !== AccountStatus.CONNECTING) return account;
  }
}
const good = await connect(process.env.SCENARIO_GOOD_KEY ?? fail("SCENARIO_GOOD_KEY is not set"));
const active = await settled(good.id);
if (active.status !== AccountStatus.ACTIVE) {
  fail(`account ${active.id} ended ${AccountStatus[active.status]}: ${active.statusReason}`);
}
console.log(
  `account ${active.id} in development: ${AccountStatus[active.status]} on WatchAccounts (remote ${active.remoteName})`,
);
for (const environment of ["staging", "production"]) {
  const elsewhere = createRoomkeyClient(AccountService, { environment, token: admin });
  const err = await expectError(
    () => elsewhere.getAccount({ id: good.id }),
    Code.NotFound,
    ErrorReason.ACCOUNT_NOT_FOUND,
  );
  console.log(`account in ${environment}: ${Code[err.code]} ${err.reasonName}`);
}

// A bad key ends FAILED with the provider's words.
const bad = await connect("not-a-valid-key");
const failed = await settled(bad.id);
if (failed.status !== AccountStatus.FAILED) fail(`bad key ended ${AccountStatus[failed.status]}`);
console.log(`bad key: ${AccountStatus[failed.status]}: ${failed.statusReason}`);
watching.abort();

// An invalid environment name is INVALID_ARGUMENT, naming the header.
const invalid = createRoomkeyClient(EnvironmentService, { environment: "Not_An_Environment", token: admin });
const err = await expectError(() => invalid.getEnvironment({}), Code.InvalidArgument, ErrorReason.ENVIRONMENT_INVALID);
const violation = err.fieldViolations[0] ?? fail("no field violation");
console.log(
  `invalid environment: ${Code[err.code]} ${err.reasonName}, field "${violation.field}": ${violation.description}`,
);
console.log("node scenario: all checks passed");
