#!/usr/bin/env bash
# Install the interpreters the detected-stack tests run on the process
# runtime: Debian's python3 (with pip) and ruby (with bundler). Go and Node
# are already on the CI machine (setup.sh).
#
# Idempotent: a second run finds the commands and installs nothing.
set -euo pipefail

log() { printf '[setup-stacks %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
command -v bundle >/dev/null 2>&1 || missing+=(ruby-bundler)

if ((${#missing[@]} == 0)); then
	log "python3, pip, ruby and bundler already installed"
	exit 0
fi
log "apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
log "python3 $(python3 --version 2>&1), ruby $(ruby --version), bundler $(bundle --version)"
