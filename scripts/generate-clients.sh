#!/usr/bin/env bash
# Generates the shipped clients' code and the API reference from proto/ with
# plain protoc (only -I flags, no M flags): clients/go/roomkey/v1 (protoc-gen-go,
# protoc-gen-go-grpc), clients/python/{roomkey/v1,buf/validate} (protoc's Python
# and grpc_python_plugin) and docs/api.md (protoc-gen-doc). Never edit them by
# hand. With --check it also generates TypeScript with protoc and protoc-gen-es
# and compares it with src/gen, then fails when anything committed is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh ${1:+--exact}
plugins=$(scripts/install-go-plugins.sh)
export PATH="$plugins:$PATH"
files=(proto/roomkey/v1/*.proto)
module=github.com/roomkey-dev/roomkey/clients/go

rm -f clients/go/roomkey/v1/*.pb.go
mkdir -p clients/go/roomkey/v1
protoc -I proto -I proto-deps \
  --go_out=clients/go --go_opt=module=$module \
  --go-grpc_out=clients/go --go-grpc_opt=module=$module \
  "${files[@]}"

py=clients/python
rm -rf "$py/roomkey/v1" "$py/buf"
mkdir -p "$py/roomkey/v1"
protoc -I proto -I proto-deps \
  --python_out="$py" --pyi_out="$py" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" --grpc_python_out="$py" \
  "${files[@]}" buf/validate/validate.proto
# grpc_python_plugin writes an empty *_pb2_grpc.py for files without services.
for f in "$py"/roomkey/v1/*_pb2_grpc.py "$py"/buf/validate/*_pb2_grpc.py; do
  grep -q "^class " "$f" || rm "$f"
done
echo '"""Generated from proto/roomkey/v1 by scripts/generate-clients.sh. Do not edit."""' > "$py/roomkey/v1/__init__.py"
echo '"""buf.validate messages that roomkey'"'"'s protos import, generated from proto-deps. Do not edit."""' > "$py/buf/__init__.py"
cp "$py/buf/__init__.py" "$py/buf/validate/__init__.py"

protoc -I proto -I proto-deps --doc_out=docs --doc_opt=markdown,api.md "${files[@]}"
# Well-known types are not in the reference: link them to protobuf's own.
sed -i -E 's#\]\(\#google-protobuf-([A-Za-z]+)\)#](https://protobuf.dev/reference/protobuf/google.protobuf/\#\L\1)#g' docs/api.md

if [ "${1:-}" = "--check" ]; then
  ts=$(mktemp -d)
  trap 'rm -rf "$ts"' EXIT
  protoc -I proto -I proto-deps --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
    --es_out="$ts" --es_opt=target=ts,import_extension=js,rewrite_imports=./buf/validate/*_pb.js:@bufbuild/protovalidate/gen \
    "${files[@]}"
  # Same code as buf generate; only the embedded descriptors' bytes differ (protoc and buf
  # order the options of a field differently), so those lines are left out of the comparison.
  diff -r -I '^  fileDesc(' "$ts/roomkey" src/gen/roomkey
  generated=(clients/go/roomkey/v1 clients/python/roomkey/v1 clients/python/buf docs/api.md)
  git diff --exit-code -- "${generated[@]}"
  stale=$(git status --porcelain --untracked-files=all -- "${generated[@]}" | grep -v '__pycache__' || true)
  if [ -n "$stale" ]; then
    echo "generate-clients: not committed: $stale" >&2
    exit 1
  fi
fi
