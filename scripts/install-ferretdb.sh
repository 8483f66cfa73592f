#!/usr/bin/env bash
# Builds FerretDB 1.24.2 from the Go module proxy and prints the binary's path.
#
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` alone gives a
# binary that panics at start ("Invalid build/version/version.txt"): the module
# zip lacks the version file its release build generates. So this fetches the
# same module version, writes that file, and builds the same main package.
#
# Safe to run several times at once: each build writes a temporary file of its
# own beside the binary and renames it into place, so no run ever sees (or
# runs) half a binary.
set -euo pipefail
version=v1.24.2
tools="${ROOMKEY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomkey}"
bin="$tools/ferretdb-$version/ferretdb"
if [ -x "$bin" ]; then
  # Captured, not piped into `grep -q`: grep exits at the first match and the
  # binary's next write then fails (SIGPIPE), which pipefail counted as a failed check.
  have=$("$bin" --version 2>/dev/null || true)
  if [[ $have == *"version: $version"* ]]; then
    echo "$bin"
    exit 0
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-ferretdb: Go is needed to build FerretDB (https://go.dev/dl/), or set MONGODB_URL to a MongoDB" >&2
  exit 1
fi
echo "install-ferretdb: building FerretDB $version (first run only, about a minute)" >&2
src=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
  echo "install-ferretdb: could not download github.com/FerretDB/FerretDB@$version" >&2
  exit 1
fi
mkdir -p "$(dirname "$bin")"
work=$(mktemp -d)
tmp=$(mktemp "$bin.tmp.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$tmp"' EXIT
cp -R "$src/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
(cd "$work" && go build -trimpath -o "$tmp" ./cmd/ferretdb)
chmod 755 "$tmp"
mv -f "$tmp" "$bin"
echo "$bin"
