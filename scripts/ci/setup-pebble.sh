#!/usr/bin/env bash
# Install Pebble (Let's Encrypt's ACME test server) and its challenge test
# server for the ACME tests, from the Go module proxy, pinned.
#
# Idempotent: a second run finds the pinned binaries and only rewrites the env
# file. What it leaves behind:
#   - /opt/slipway-ci/bin/pebble, /opt/slipway-ci/bin/pebble-challtestsrv
#   - the pebble module source in the Go module cache (its test/certs: the
#     ACME server's own TLS certificate and the minica root that signs it)
#   - /run/slipway-ci/pebble.env (or $(dirname $SLIPWAY_CI_ENV_FILE)/pebble.env):
#       SLIPWAY_PEBBLE              path of the pebble binary
#       SLIPWAY_PEBBLE_CHALLTESTSRV path of pebble-challtestsrv (its DNS server)
#       SLIPWAY_PEBBLE_CERTS        pebble's test/certs directory
set -euo pipefail

PEBBLE_VERSION=v2.10.3
BIN=/opt/slipway-ci/bin
ENV_DIR=$(dirname "${SLIPWAY_CI_ENV_FILE:-/run/slipway-ci/docker.env}")

log() { printf '[setup-pebble %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=$PATH:/usr/local/go/bin
fi

stamp=$BIN/.pebble-$PEBBLE_VERSION
if [[ -x $BIN/pebble && -x $BIN/pebble-challtestsrv && -e $stamp ]]; then
	log "pebble $PEBBLE_VERSION already installed in $BIN"
else
	log "go install pebble $PEBBLE_VERSION into $BIN"
	mkdir -p "$BIN"
	# Run outside any module so go install uses the pinned version only.
	(cd / && GOBIN=$BIN GOFLAGS=-mod=mod go install \
		"github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" \
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION")
	rm -f "$BIN"/.pebble-v*
	touch "$stamp"
fi

certs=$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION/test/certs
if [[ ! -r $certs/pebble.minica.pem ]]; then
	# The binaries may have come from an earlier run whose module cache is gone.
	(cd / && go mod download -x "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION" >/dev/null 2>&1) || true
fi
[[ -r $certs/localhost/cert.pem ]] || { echo "pebble test certs missing in $certs" >&2; exit 1; }

mkdir -p "$ENV_DIR"
cat >"$ENV_DIR/pebble.env" <<ENV
# written by scripts/ci/setup-pebble.sh
SLIPWAY_PEBBLE=$BIN/pebble
SLIPWAY_PEBBLE_CHALLTESTSRV=$BIN/pebble-challtestsrv
SLIPWAY_PEBBLE_CERTS=$certs
ENV
log "wrote $ENV_DIR/pebble.env"
