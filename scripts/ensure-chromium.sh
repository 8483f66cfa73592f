#!/usr/bin/env bash
# Prints the path of a Chromium for the browser tests (the queue dashboard's),
# installing Debian's `chromium` with apt-get when it is missing. Fails, saying
# why, where it cannot: the tests then skip the browser unless
# ROOMKEY_REQUIRE_BROWSER=1 (CI sets it).
set -euo pipefail
for candidate in "${ROOMKEY_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: no Chromium; install one and set ROOMKEY_CHROMIUM to its path" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "ensure-chromium: no Chromium; install it (apt-get install chromium) or run as root" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi
echo "ensure-chromium: installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium >&2 ||
  { "${sudo[@]}" apt-get update -q >&2 && "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium >&2; }
echo /usr/bin/chromium
