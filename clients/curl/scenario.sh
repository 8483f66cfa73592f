#!/usr/bin/env bash
# The curl scenario that CI runs against a real roomkey
# (test/integration/clients.test.ts): the Connect protocol with JSON on the
# HTTP port. docs/clients.md quotes the parts between "snippet:" markers.
# Needs ROOMKEY_HTTP_URL and ROOMKEY_ADMIN_KEY.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
ROOMKEY_URL="$ROOMKEY_HTTP_URL"
created=$(curl -sS "$ROOMKEY_URL/roomkey.v1.TokenService/CreateToken" \
  -H 'content-type: application/json' -H 'roomkey-environment: staging' \
  -H "authorization: Bearer $ROOMKEY_ADMIN_KEY" \
  -d '{"name": "curl-scenario", "scopes": ["accounts:read"]}')
TOKEN=$(printf '%s' "$created" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || fail "CreateToken answered $created"
# snippet:curl-call
curl -sS "$ROOMKEY_URL/roomkey.v1.AccountService/ListAccounts" \
  -H 'content-type: application/json' \
  -H 'roomkey-environment: staging' \
  -H "authorization: Bearer $TOKEN" \
  -d '{"pageSize": 10}'
# end-snippet
echo
for environment in development production; do
  answer=$(curl -sS -w '\n%{http_code}' "$ROOMKEY_URL/roomkey.v1.AccountService/ListAccounts" \
    -H 'content-type: application/json' -H "roomkey-environment: $environment" \
    -H "authorization: Bearer $TOKEN" -d '{}')
  code=$(printf '%s' "$answer" | tail -1)
  body=$(printf '%s' "$answer" | head -n -1)
  [ "$code" = 403 ] || fail "staging token in $environment: HTTP $code $body"
  printf '%s' "$body" | grep -q '"code":"permission_denied"' || fail "no permission_denied in $body"
  printf '%s' "$body" | grep -q '"reason":"TOKEN_WRONG_ENVIRONMENT"' || fail "no reason in $body"
  echo "staging token in $environment: HTTP $code $body"
done
echo "curl scenario: all checks passed"
