/**
 * The connect page's script and stylesheet, kept as strings so a `tsc` build
 * carries them with no copy step. Served from `/connect/assets/`.
 *
 * The script is plain ES2017 with no dependencies. It reads the session
 * secret from the URL once, keeps it in sessionStorage (per session id, so it
 * survives the round trip to an OAuth provider in the same tab), strips it
 * from the address bar, and calls roomkey's Connect-protocol JSON endpoints on
 * this origin with it. It ends the flow by redirecting to the session's
 * return URL, or by posting a message to the opener (or the framing parent) on
 * each allowed origin, or by showing the result.
 */

export const connectScript = String.raw`(function () {
  "use strict";
  var configElement = document.getElementById("connect-config");
  if (!configElement) return;
  var config = JSON.parse(configElement.textContent || "{}");
  var storageKey = "roomkey.connect." + config.sessionId;
  var pollEveryMs = 1000;
  var pollForMs = 120000;
  var finished = false;
  var busy = false;
  var chosen = null;

  function byId(id) { return document.getElementById(id); }
  function say(text, kind) {
    var region = byId("status");
    if (!region) return;
    region.textContent = text;
    region.className = "status" + (kind ? " " + kind : "");
  }
  function stored() { try { return sessionStorage.getItem(storageKey) || ""; } catch (e) { return ""; } }
  function store(value) { try { sessionStorage.setItem(storageKey, value); } catch (e) { /* private mode */ } }
  function forget() { try { sessionStorage.removeItem(storageKey); } catch (e) { /* private mode */ } }
  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  var secret = stored();
  if (config.mode === "connect" || config.mode === "spent") {
    var fromUrl = new URLSearchParams(location.search).get("session");
    if (fromUrl) { secret = fromUrl; store(fromUrl); }
    try { history.replaceState(null, "", location.pathname + "?resume=" + encodeURIComponent(config.sessionId)); } catch (e) { /* ignore */ }
  }

  function call(method, body) {
    return fetch("/roomkey.v1.AccountService/" + method, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "authorization": "Bearer " + secret,
        "roomkey-environment": config.environment
      },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = {}; }
        if (!response.ok) {
          var error = new Error(data.message || "The request failed (HTTP " + response.status + ").");
          error.code = data.code || "";
          throw error;
        }
        return data;
      });
    }, function () {
      var error = new Error("roomkey could not be reached. Check your connection and try again.");
      error.code = "unavailable";
      throw error;
    });
  }

  function statusOf(account) {
    // A failed re-authorization leaves the account in its old status (old credentials kept): it failed here.
    if (account && account.reauthorizationFailed) return "FAILED";
    return String((account && account.status) || "ACCOUNT_STATUS_CONNECTING").replace("ACCOUNT_STATUS_", "");
  }

  /** Reads the account until its handshake ends (or time runs out), riding out a few failed reads. */
  function poll(accountId) {
    var started = Date.now();
    var failures = 0;
    function once() {
      return call("GetAccount", { id: accountId }).then(function (data) {
        failures = 0;
        if (statusOf(data.account) !== "CONNECTING" || Date.now() - started > pollForMs) return data.account;
        return wait(pollEveryMs).then(once);
      }, function (error) {
        failures += 1;
        if (failures >= 3 || Date.now() - started > pollForMs) throw error;
        return wait(pollEveryMs).then(once);
      });
    }
    return once();
  }

  function setBusy(value) {
    busy = value;
    var controls = document.querySelectorAll("button, input");
    for (var i = 0; i < controls.length; i++) {
      if (controls[i].getAttribute("data-off") === "1") continue;
      controls[i].disabled = value;
    }
    document.body.setAttribute("aria-busy", value ? "true" : "false");
  }

  function showResult(status, error) {
    var parts = {
      ACTIVE: ["Connected", "Your account is connected. You can close this page."],
      FAILED: ["Not connected", error || "The connection failed."],
      CONNECTING: ["Almost done", "The connection is being checked. You can close this page: the app will see the account when it is ready."]
    };
    var shown = parts[status] || ["Done", "Status: " + status.toLowerCase() + ". You can close this page."];
    ["choose", "credential-form"].forEach(function (id) { var element = byId(id); if (element) element.hidden = true; });
    say("");
    var result = byId("result");
    if (!result) return;
    result.className = "result " + (status === "ACTIVE" ? "ok" : status === "FAILED" ? "failed" : "pending");
    byId("result-title").textContent = shown[0];
    byId("result-text").textContent = shown[1];
    var retry = byId("retry");
    retry.hidden = !(status === "FAILED" && stored());
    result.hidden = false;
    result.focus();
  }

  /** Ends the flow: back to the return URL, or a message to the opener (or parent) on each allowed origin, or the result. */
  function finish(status, accountId, error) {
    if (finished) return;
    finished = true;
    if (status === "ACTIVE") forget();
    if (config.returnUrl) {
      var target = new URL(config.returnUrl);
      target.searchParams.set("account_id", accountId || "");
      target.searchParams.set("status", status.toLowerCase());
      target.searchParams.set("session_id", config.sessionId);
      if (error) target.searchParams.set("error", error);
      say("Returning to the app…", "busy");
      location.assign(target.toString());
      return;
    }
    var message = { type: "roomkey.connect", sessionId: config.sessionId, accountId: accountId || "", status: status };
    if (error) message.error = error;
    var opener = window.opener && !window.opener.closed ? window.opener : null;
    var receiver = opener || (window.parent !== window ? window.parent : null);
    var origins = config.allowedOrigins || [];
    if (receiver) {
      origins.forEach(function (origin) {
        try { receiver.postMessage(message, origin); } catch (e) { /* a closed or navigated receiver */ }
      });
    }
    showResult(status, error);
    if (opener && origins.length > 0) setTimeout(function () { window.close(); }, 300);
  }

  function integrationNamed(name) {
    var list = config.integrations || [];
    for (var i = 0; i < list.length; i++) if (list[i].name === name) return list[i];
    return null;
  }
  function titleOf(integration) { return integration.displayName || integration.name; }
  function withAccount(body) {
    if (config.reauthorizeAccountId) body.accountId = config.reauthorizeAccountId;
    return body;
  }

  function showForm(integration) {
    chosen = integration;
    var form = byId("credential-form");
    byId("form-title").textContent = (config.reauthorizeAccountId ? "Reconnect " : "Connect ") + titleOf(integration);
    var fields = form.querySelectorAll(".field");
    var first = null;
    for (var i = 0; i < fields.length; i++) {
      var on = fields[i].getAttribute("data-auth") === integration.authType;
      fields[i].hidden = !on;
      var input = fields[i].querySelector("input");
      input.disabled = !on;
      input.setAttribute("data-off", on ? "0" : "1");
      if (on && !first) first = input;
    }
    byId("choose").hidden = true;
    form.hidden = false;
    say("");
    if (first) first.focus();
  }

  function backToList() {
    var form = byId("credential-form");
    form.reset();
    form.hidden = true;
    byId("choose").hidden = false;
    say("");
    var button = chosen && document.querySelector('button.integration[data-integration="' + chosen.name + '"]');
    if (button) button.focus();
  }

  function submitCredential(event) {
    event.preventDefault();
    if (busy || !chosen) return;
    var body = withAccount({ integration: chosen.name });
    if (chosen.authType === "basic") {
      body.basic = { username: byId("username").value, password: byId("password").value };
    } else {
      body.apiKey = { key: byId("api-key").value };
    }
    setBusy(true);
    say("Checking with " + titleOf(chosen) + "…", "busy");
    call("ConnectAccount", body).then(function (data) {
      return poll(data.account.id);
    }).then(function (account) {
      var status = statusOf(account);
      if (status === "FAILED") {
        setBusy(false);
        var reason = String(account.statusReason || "the credential was refused").replace(/[.\s]+$/, "");
        say("That did not work: " + reason + ". Check it and try again.", "error");
        var first = byId("credential-form").querySelector("input:not([disabled])");
        if (first) { first.focus(); first.select(); }
        return;
      }
      byId("credential-form").reset();
      finish(status, account.id);
    }).catch(function (error) {
      setBusy(false);
      say(error.message, "error");
    });
  }

  function startOAuth(integration) {
    chosen = integration;
    setBusy(true);
    say("Opening " + titleOf(integration) + "…", "busy");
    call("StartOAuthConnection", withAccount({ integration: integration.name })).then(function (data) {
      location.assign(data.authorizationUrl);
    }).catch(function (error) {
      setBusy(false);
      say(error.message, "error");
    });
  }

  function startConnect() {
    if (!secret) {
      showResult("FAILED", "This page no longer has its connect link. Start again from the app that sent you here.");
      byId("retry").hidden = true;
      return;
    }
    var buttons = document.querySelectorAll("button.integration");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        var integration = integrationNamed(event.currentTarget.getAttribute("data-integration"));
        if (busy || !integration) return;
        if (integration.authType === "oauth2") startOAuth(integration); else showForm(integration);
      });
    }
    byId("credential-form").addEventListener("submit", submitCredential);
    byId("back").addEventListener("click", backToList);
  }

  function finishCallback() {
    if (config.error) { finish("FAILED", config.accountId, config.error); return; }
    if (!secret || !config.accountId) { finish("CONNECTING", config.accountId); return; }
    say("Waiting for the provider to confirm…", "busy");
    poll(config.accountId).then(function (account) {
      var status = statusOf(account);
      finish(status, account.id, status === "FAILED" ? account.statusReason || "The provider refused the connection." : undefined);
    }, function () {
      finish("CONNECTING", config.accountId);
    });
  }

  var retry = byId("retry");
  if (retry) retry.addEventListener("click", function () {
    location.assign("/connect?resume=" + encodeURIComponent(config.sessionId));
  });

  if (config.mode === "connect") startConnect();
  else if (config.mode === "callback") finishCallback();
  else if (config.mode === "spent") forget();
  else if (config.mode === "resume") {
    if (secret) location.replace("/connect?session=" + encodeURIComponent(secret));
    else {
      showResult("FAILED", "This page no longer has its connect link. Start again from the app that sent you here.");
      byId("result-title").textContent = "Start again";
    }
  }
})();
`;

export const connectStyle = String.raw`:root {
  color-scheme: light;
  --accent: #4338ca;
  --accent-hover: #3730a3;
  --accent-soft: #eef2ff;
  --text: #111827;
  --muted: #4b5563;
  --border: #e5e7eb;
  --field: #9ca3af;
  --page: #f3f4f6;
  --error: #b91c1c;
  --ok: #047857;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  min-height: 100vh;
  display: flex;
  flex-direction: column;
  align-items: center;
  justify-content: center;
  padding: 32px 16px;
  background: var(--page);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
.card {
  width: 100%;
  max-width: 440px;
  background: #fff;
  border: 1px solid var(--border);
  border-radius: 16px;
  padding: 32px 28px 28px;
  box-shadow: 0 1px 2px rgba(17, 24, 39, 0.04), 0 12px 32px rgba(17, 24, 39, 0.08);
}
h1 { font-size: 1.375rem; line-height: 1.3; margin: 0; letter-spacing: -0.01em; }
h2 { font-size: 1.125rem; line-height: 1.35; margin: 0 0 16px; }
p { margin: 0 0 12px; }
.lead { margin: 4px 0 24px; color: var(--muted); overflow-wrap: anywhere; }
.hint { color: var(--muted); font-size: 0.9375rem; }
.integrations { list-style: none; margin: 0; padding: 0; display: grid; gap: 10px; }
.integration {
  width: 100%;
  display: flex;
  align-items: center;
  gap: 14px;
  min-height: 60px;
  padding: 12px 14px;
  background: #fff;
  color: inherit;
  border: 1px solid var(--border);
  border-radius: 12px;
  font: inherit;
  text-align: left;
  cursor: pointer;
  transition: border-color 0.15s, background-color 0.15s;
}
.integration:hover { border-color: var(--accent); background: #fafaff; }
.logo {
  flex: none;
  width: 36px;
  height: 36px;
  border-radius: 10px;
  background: var(--accent-soft);
  color: var(--accent);
  display: flex;
  align-items: center;
  justify-content: center;
  font-weight: 700;
}
.label { flex: 1; min-width: 0; display: flex; flex-direction: column; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.kind { color: var(--muted); font-size: 0.8125rem; }
.chevron { color: var(--field); font-size: 1.5rem; line-height: 1; }
.field { margin-bottom: 16px; }
label { display: block; font-weight: 600; font-size: 0.9375rem; margin-bottom: 6px; }
input {
  width: 100%;
  min-height: 44px;
  padding: 10px 12px;
  font: inherit;
  color: inherit;
  background: #fff;
  border: 1px solid var(--field);
  border-radius: 10px;
}
.actions { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 20px; }
.button {
  min-height: 44px;
  padding: 10px 18px;
  font: inherit;
  font-weight: 600;
  border: 1px solid transparent;
  border-radius: 10px;
  cursor: pointer;
}
.primary { flex: 1; background: var(--accent); color: #fff; }
.primary:hover { background: var(--accent-hover); }
.secondary { background: #fff; color: var(--text); border-color: var(--field); }
.secondary:hover { background: var(--page); }
button:disabled, input:disabled { opacity: 0.6; cursor: progress; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.status { margin-top: 16px; font-size: 0.9375rem; color: var(--muted); overflow-wrap: anywhere; }
.status:empty { margin: 0; }
.status.error { color: var(--error); }
.status.busy::before {
  content: "";
  display: inline-block;
  width: 14px;
  height: 14px;
  margin-right: 8px;
  vertical-align: -2px;
  border: 2px solid #c7d2fe;
  border-top-color: var(--accent);
  border-radius: 50%;
  animation: spin 0.8s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .status.busy::before { animation: none; } .integration { transition: none; } }
.result { outline: none; }
.result h2 { display: flex; align-items: center; gap: 10px; margin-top: 8px; }
.result h2::before {
  flex: none;
  width: 28px;
  height: 28px;
  border-radius: 50%;
  display: inline-flex;
  align-items: center;
  justify-content: center;
  font-size: 1rem;
  color: #fff;
}
.result.ok h2::before { content: "\2713"; background: var(--ok); }
.result.failed h2::before { content: "!"; background: var(--error); }
.result.pending h2::before { content: "\2026"; background: var(--muted); }
.result p { color: var(--muted); overflow-wrap: anywhere; }
.error, .error-text { color: var(--error); overflow-wrap: anywhere; }
.footer { margin: 16px 0 0; color: var(--muted); font-size: 0.8125rem; }
@media (max-width: 480px) {
  body { justify-content: flex-start; padding: 16px 12px; }
  .card { padding: 24px 18px 20px; border-radius: 14px; }
}
`;
