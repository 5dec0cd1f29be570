#!/usr/bin/env bash
# The UI end-to-end test drives Debian's Chromium (Playwright's own browser download is not reachable).
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "note: chromium not installed and not root; the UI test will report it as missing" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null || echo "warning: apt-get could not install chromium" >&2
