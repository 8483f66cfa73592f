#!/usr/bin/env bash
# Installs grpcurl (used by the README's session and its test) into roomkey's
# tools cache, outside the PATH.
#
#   scripts/install-grpcurl.sh            prints the binary's path
#   scripts/install-grpcurl.sh --export   prints `export PATH="<its directory>:$PATH"`, so that
#                                         eval "$(scripts/install-grpcurl.sh --export)"
#                                         lets this shell call plain `grpcurl`
set -euo pipefail
version=v1.9.4
tools="${ROOMKEY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomkey}"
dir="$tools/grpcurl-$version"
bin="$dir/grpcurl"
case "${1:-}" in
  "" | --export) ;;
  *)
    echo "usage: scripts/install-grpcurl.sh [--export]" >&2
    exit 2
    ;;
esac
if [ ! -x "$bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-grpcurl: Go is needed to build grpcurl" >&2
    exit 1
  fi
  echo "install-grpcurl: building grpcurl $version (first run only)" >&2
  GOBIN="$dir" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version"
fi
export_line="export PATH=$(printf %q "$dir"):\"\$PATH\""
if [ "${1:-}" = --export ]; then
  echo "$export_line"
  exit 0
fi
echo "$bin"
# Run by hand (not captured by a script): say how to call plain `grpcurl`, unless it already resolves to this one.
if [ -t 1 ] && [ "$(command -v grpcurl 2>/dev/null)" != "$bin" ]; then
  echo "install-grpcurl: to call plain grpcurl in this shell: $export_line" >&2
  echo "install-grpcurl: (or: eval \"\$(scripts/install-grpcurl.sh --export)\")" >&2
fi
