#!/usr/bin/env bash
# Installs grpcurl (used by the README's session and its test) and prints its path.
set -euo pipefail
version=v1.9.4
tools="${ROOMKEY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomkey}"
bin="$tools/grpcurl-$version/grpcurl"
if [ ! -x "$bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-grpcurl: Go is needed to build grpcurl" >&2
    exit 1
  fi
  echo "install-grpcurl: building grpcurl $version (first run only)" >&2
  GOBIN="$(dirname "$bin")" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version"
fi
echo "$bin"
