#!/usr/bin/env bash
# Install Debian's docker-compose (v1, Python; the compose v2 plugin is not
# packaged here) for the export tests: `docker-compose -f FILE config` checks
# the files `slipway export compose|stack` write, and the export integration
# test brings a compose file up on the engine scripts/ci/setup.sh started.
#
# Idempotent: installs only when docker-compose is missing. As root.
set -euo pipefail

log() { printf '[setup-compose %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "setup-compose: must run as root (installs a package)" >&2
	exit 1
fi
if command -v docker-compose >/dev/null 2>&1; then
	log "docker-compose present: $(docker-compose version --short 2>/dev/null || echo '?')"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show docker-compose >/dev/null 2>&1; then
	log "apt-get update (docker-compose not in the package lists)"
	apt-get update -qq
fi
log "installing docker-compose"
apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
log "docker-compose $(docker-compose version --short)"
