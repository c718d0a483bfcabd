#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser tests (internal/console,
# driven by chromedp over the DevTools protocol; no chromium-driver needed).
# Idempotent; run as root.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
