#!/usr/bin/env bash
# `buf breaking` for the contract in proto/ against the previous commit (rules:
# buf.yaml's FILE set). A clean clone has the full history, so CI runs it on
# every change.
#
# A breaking change must be explicit: the commit that makes it carries a line
#   Proto-Breaking-Change: <why, and the CHANGELOG.md entry that records it>
# in its message. Then the breaks are printed and the check passes.
#
# Usage: scripts/check-breaking.sh [<commit to compare against>]
set -euo pipefail
cd "$(dirname "$0")/.."
# On a clean clone (CI) the work tree is HEAD: compare with its parent. With
# uncommitted changes to proto/, compare them with HEAD.
committed=1
if git diff --quiet HEAD -- proto; then against="${1:-HEAD~1}"; else against="${1:-HEAD}"; committed=0; fi
if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
  echo "check-breaking: this is a shallow clone; fetch the history (git fetch --unshallow) to compare with $against" >&2
  # CI (.ci/run) must compare; a user's shallow clone running the tests is only told.
  [ "${ROOMKEY_REQUIRE_BREAKING_CHECK:-}" = 1 ] && exit 1
  exit 0
fi
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
  echo "check-breaking: $against does not exist (the first commit); nothing to compare with" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$against" -- proto | tar -x -C "$work"
# The imports: the earlier commit's own when it has them, else today's (they
# were derived at build time before proto-deps/ was committed).
if git cat-file -e "$against:proto-deps" 2>/dev/null; then
  git archive "$against" -- proto-deps | tar -x -C "$work"
else
  cp -R proto-deps "$work/"
fi
cp buf.yaml "$work/"
# Only a commit can carry the override: uncommitted changes are always checked.
allowed=""
if [ "$committed" = 1 ]; then
  allowed=$(git log -1 --format=%B HEAD | sed -n 's/^Proto-Breaking-Change:[[:space:]]*\(.*\)$/\1/p' | head -1)
fi
if out=$(npx --no-install buf breaking proto --against "$work/proto" 2>&1); then
  echo "check-breaking: proto/ has no breaking change against $(git rev-parse --short "$against")"
  exit 0
fi
echo "$out" >&2
if [ -n "$allowed" ]; then
  echo "check-breaking: breaking changes against $(git rev-parse --short "$against") allowed by HEAD's Proto-Breaking-Change: $allowed" >&2
  exit 0
fi
echo "check-breaking: proto/ breaks the contract of $(git rev-parse --short "$against"). If that is intended, record it in CHANGELOG.md and add a line 'Proto-Breaking-Change: <why>' to the commit message." >&2
exit 1
