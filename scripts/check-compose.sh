#!/usr/bin/env bash
# Validates compose files without a Docker engine. scripts/compose-check is a
# small Go program on compose-go, the loader `docker compose` itself runs
# (Compose Specification schema, interpolation, normalization, consistency);
# it is built once from the Go module proxy, pinned by its go.sum, and cached
# under ~/.cache/roomkey keyed by its sources.
#
#   scripts/check-compose.sh [FILE...]     default: docker-compose.yml at the repo root
#
# Each file is loaded with no ROOMKEY_* variable set and no .env, and with the services `mongo redis`
# picked, as `docker compose up -d mongo redis` does; then once more with the replica-set profile and
# the services `api-rs worker-rs` picked, as `docker compose --profile replica-set up api-rs worker-rs`
# does.
#
# Exit 0 when every file is valid, 1 when one is not, 2 when the checker cannot be built.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/scripts/compose-check
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
tool_dir=${XDG_CACHE_HOME:-$HOME/.cache}/roomkey/compose-check-$key
tool=$tool_dir/compose-check

if [[ ! -x $tool ]]; then
  command -v go >/dev/null || { echo "check-compose: Go is needed to build $src" >&2; exit 2; }
  mkdir -p "$tool_dir"
  log=$(mktemp)
  # Built beside the target, then renamed: concurrent runs never see half a binary.
  if ! (cd "$src" && go build -mod=readonly -trimpath -o "$tool.tmp.$$" . >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log" "$tool.tmp.$$"
    echo "check-compose: could not build $src" >&2
    exit 2
  fi
  rm -f "$log"
  mv -f "$tool.tmp.$$" "$tool"
fi

# As on a fresh machine: no ROOMKEY_* variable and no .env, so the file must load without keys
# (real keys never reach the checker), and `docker compose up -d mongo redis`, the hint the
# scripts and the README give, must work as written.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ROOMKEY_' || true)
export COMPOSE_DISABLE_ENV_FILE=1
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME

(($# > 0)) || set -- "$root/docker-compose.yml"
status=0
for file in "$@"; do
  if out=$("$tool" -select mongo,redis "$file" 2>&1); then
    echo "check-compose: $file is valid ($out)"
  else
    echo "check-compose: $file is invalid:" >&2
    echo "$out" | sed 's/^/  /' >&2
    status=1
  fi
  if out=$("$tool" -profile replica-set -select api-rs,worker-rs "$file" 2>&1); then
    echo "check-compose: $file is valid with --profile replica-set ($out)"
  else
    echo "check-compose: $file is invalid with --profile replica-set:" >&2
    echo "$out" | sed 's/^/  /' >&2
    status=1
  fi
done
exit "$status"
