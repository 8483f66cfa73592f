#!/usr/bin/env bash
# Installs the pinned protoc plugins written in Go (first run only, cached like
# FerretDB in ROOMKEY_TOOLS_DIR) and prints the folder that holds them:
# protoc-gen-go and protoc-gen-go-grpc for clients/go, protoc-gen-doc for
# docs/api.md.
set -euo pipefail
plugins=(
  google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
  github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc@v1.5.1
)
tools="${ROOMKEY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomkey}"
dir="$tools/protoc-plugins-$(printf '%s\n' "${plugins[@]}" | sha256sum | cut -c1-12)"
missing=0
for plugin in "${plugins[@]}"; do
  name=${plugin%@*}
  [ -x "$dir/${name##*/}" ] || missing=1
done
if [ "$missing" = 1 ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-go-plugins: Go is needed to install the protoc plugins (https://go.dev/dl/)" >&2
    exit 1
  fi
  echo "install-go-plugins: installing ${plugins[*]} (first run only)" >&2
  mkdir -p "$dir"
  for plugin in "${plugins[@]}"; do GOBIN="$dir" go install "$plugin" >&2; done
fi
echo "$dir"
