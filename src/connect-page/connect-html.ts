/**
 * The connect page's HTML, rendered on the server. Everything shown is
 * escaped; what the script needs travels in one `application/json` block
 * (never the session secret: the script has it from the URL).
 */

/** What a page needs of a session. */
export interface PageView {
  environment: string;
  sessionId: string;
  /** The end user's display name, or their id when they have none. */
  endUserName: string;
  integrations: { name: string; displayName: string; authType: "api_key" | "basic" | "oauth2" }[];
  allowedOrigins: string[];
  returnUrl?: string;
  /** Set when the session re-authorizes this account in place. */
  reauthorizeAccountId?: string;
  /** The account the session connected, once it began one. */
  accountId?: string;
  status: "open" | "spent" | "expired" | "revoked";
}

/** The callback's page: a view of the session, and why the attempt failed when it did. */
export interface CallbackView extends PageView {
  error?: string;
}

const htmlEscapes: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text or an attribute value made safe for HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => htmlEscapes[c] ?? c);
}

/**
 * JSON safe inside a `<script type="application/json">` block: nothing in it
 * can close the element or open a comment.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

const authLabels = { api_key: "API key", basic: "Username and password", oauth2: "Sign in with the provider" } as const;

function layout(title: string, body: string, config?: unknown): string {
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    '<meta name="robots" content="noindex, nofollow">',
    '<link rel="icon" href="data:,">',
    `<title>${escapeHtml(title)}</title>`,
    '<link rel="stylesheet" href="/connect/assets/connect.css">',
    config === undefined ? "" : '<script src="/connect/assets/connect.js" defer></script>',
    "</head>",
    "<body>",
    '<main class="card">',
    body,
    "</main>",
    '<p class="footer">Secured by roomkey</p>',
    config === undefined ? "" : `<script type="application/json" id="connect-config">${scriptJson(config)}</script>`,
    "</body>",
    "</html>",
    "",
  ]
    .filter((line) => line !== "")
    .join("\n");
}

function configOf(view: PageView, mode: "connect" | "callback" | "spent", error?: string) {
  return {
    mode,
    environment: view.environment,
    sessionId: view.sessionId,
    integrations: view.integrations,
    allowedOrigins: view.allowedOrigins,
    returnUrl: view.returnUrl ?? "",
    reauthorizeAccountId: view.reauthorizeAccountId ?? "",
    accountId: view.accountId ?? "",
    ...(error === undefined ? {} : { error }),
  };
}

const statusRegion = '<div id="status" class="status" role="status" aria-live="polite"></div>';

const resultSection = [
  '<section id="result" class="result" hidden tabindex="-1" aria-labelledby="result-title">',
  '<h2 id="result-title"></h2>',
  '<p id="result-text"></p>',
  '<button type="button" id="retry" class="button secondary" hidden>Try again</button>',
  "</section>",
].join("\n");

/** The form for API-key and basic integrations: the script shows the fields of the chosen one. */
const credentialForm = [
  '<form id="credential-form" class="credential-form" hidden autocomplete="off">',
  '<h2 id="form-title">Connect</h2>',
  '<div class="field" data-auth="api_key">',
  '<label for="api-key">API key</label>',
  '<input id="api-key" name="key" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required>',
  "</div>",
  '<div class="field" data-auth="basic">',
  '<label for="username">Username</label>',
  '<input id="username" name="username" type="text" autocomplete="off" autocapitalize="off" spellcheck="false" required>',
  "</div>",
  '<div class="field" data-auth="basic">',
  '<label for="password">Password</label>',
  '<input id="password" name="password" type="password" autocomplete="off" required>',
  "</div>",
  '<div class="actions">',
  '<button type="submit" id="submit" class="button primary">Connect</button>',
  '<button type="button" id="back" class="button secondary">Back</button>',
  "</div>",
  "</form>",
].join("\n");

/** The session's page: its integrations as buttons, the credential form, the status region. */
export function renderConnectPage(view: PageView): string {
  const reauth = view.reauthorizeAccountId !== undefined && view.reauthorizeAccountId !== "";
  const first = view.integrations[0];
  const heading =
    reauth && view.integrations.length === 1 && first
      ? `Reconnect ${first.displayName || first.name}`
      : reauth
        ? "Reconnect your account"
        : "Connect an account";
  if (view.status === "spent") {
    const body = [
      `<h1>${escapeHtml(heading)}</h1>`,
      `<p class="lead">for ${escapeHtml(view.endUserName)}</p>`,
      '<section class="result" aria-labelledby="spent-title">',
      '<h2 id="spent-title">Already connected</h2>',
      "<p>This link was used to connect an account already. You can close this page.</p>",
      "</section>",
    ].join("\n");
    return layout(heading, body, configOf(view, "spent"));
  }
  const buttons = view.integrations.map((integration) => {
    const name = integration.displayName || integration.name;
    const initial = name.trim().charAt(0).toUpperCase() || "?";
    const action = reauth ? `Reconnect ${name}` : name;
    return [
      "<li>",
      `<button type="button" class="integration" data-integration="${escapeHtml(integration.name)}" data-auth="${integration.authType}">`,
      `<span class="logo" aria-hidden="true">${escapeHtml(initial)}</span>`,
      `<span class="label"><span class="name">${escapeHtml(action)}</span>`,
      `<span class="kind">${authLabels[integration.authType]}</span></span>`,
      '<span class="chevron" aria-hidden="true">&rsaquo;</span>',
      "</button>",
      "</li>",
    ].join("");
  });
  const choose = [
    '<div id="choose">',
    view.integrations.length === 0
      ? "<p>No integration can be connected with this link.</p>"
      : `<p class="hint">${reauth ? "Sign in again to keep it working." : "Choose the service to connect."}</p>`,
    `<ul class="integrations" aria-label="Integrations">${buttons.join("\n")}</ul>`,
    "</div>",
  ].join("\n");
  const body = [
    `<h1>${escapeHtml(heading)}</h1>`,
    `<p class="lead">for ${escapeHtml(view.endUserName)}</p>`,
    '<noscript><p class="error">This page needs JavaScript to connect an account.</p></noscript>',
    choose,
    credentialForm,
    statusRegion,
    resultSection,
  ].join("\n");
  return layout(heading, body, configOf(view, "connect"));
}

/** The page the provider sends the end user back to: the script waits for the account, then ends the flow. */
export function renderCallbackPage(view: CallbackView): string {
  const body = [
    '<h1 id="callback-title">Finishing the connection</h1>',
    `<p class="lead">for ${escapeHtml(view.endUserName)}</p>`,
    '<noscript><p class="error">This page needs JavaScript to finish.</p></noscript>',
    statusRegion,
    resultSection,
  ].join("\n");
  return layout("Finishing the connection", body, configOf(view, "callback", view.error));
}

/** After a reload: the URL no longer has the secret; the script takes it from sessionStorage, or says to start again. */
export function renderResumePage(sessionId: string): string {
  const body = [
    "<h1>Connect an account</h1>",
    '<noscript><p class="error">This page needs JavaScript to connect an account.</p></noscript>',
    statusRegion,
    resultSection,
  ].join("\n");
  return layout("Connect an account", body, { mode: "resume", sessionId });
}

/** A page that says why nothing can be done here; no script. */
export function renderErrorPage(title: string, message: string): string {
  const body = [`<h1>${escapeHtml(title)}</h1>`, `<p class="error-text">${escapeHtml(message)}</p>`].join("\n");
  return layout(title, body);
}
