#!/usr/bin/env bash
# Runs `npm ci` when node_modules is missing or was installed from another lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.roomkey-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "ensure-deps: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi
