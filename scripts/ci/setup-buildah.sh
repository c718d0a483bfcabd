#!/usr/bin/env bash
# Install Debian's buildah, which builds Dockerfile apps when no Docker engine
# is reachable (internal/dockerbuild/buildah.go), and check that it can build
# here as root: overlay storage in a throwaway root, chroot isolation (no
# runtime, no network namespace), a RUN step in a busybox image made from the
# host's static busybox (no hub is reachable).
#
# Idempotent: a second run finds buildah, installs nothing, checks again and
# rewrites the env file. What it leaves behind:
#   - the buildah package (and its dependencies: uidmap, containers-common...)
#   - /run/slipway-ci/buildah.env (or $(dirname $SLIPWAY_CI_ENV_FILE)/buildah.env):
#       SLIPWAY_BUILDAH                 path of the buildah binary
#       SLIPWAY_BUILDAH_STORAGE_DRIVER  the storage driver the check passed with
#                                       (overlay, else vfs); Slipway reads it
# Nothing is left in /var/lib/containers/storage: the check uses its own root.
set -euo pipefail

ENV_DIR=$(dirname "${SLIPWAY_CI_ENV_FILE:-/run/slipway-ci/docker.env}")

log() { printf '[setup-buildah %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if command -v buildah >/dev/null 2>&1; then
	log "buildah already installed: $(buildah --version)"
else
	log "apt-get install buildah"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# No recommends: chroot isolation needs no OCI runtime, and overlay
	# storage as root needs no fuse-overlayfs.
	apt-get install -y -qq --no-install-recommends buildah
	log "installed $(buildah --version)"
fi

busybox=$(command -v busybox || true)
[[ -n $busybox ]] || { echo "setup-buildah: busybox is not installed (scripts/ci/setup.sh installs busybox-static)" >&2; exit 1; }

# check DRIVER: build a one-RUN image in a temporary storage root.
check() {
	local driver=$1 tmp rc=0
	tmp=$(mktemp -d /tmp/slipway-buildah-check.XXXXXX)
	mkdir -p "$tmp/ctx/bin"
	cp "$busybox" "$tmp/ctx/bin/busybox"
	printf 'FROM scratch\nCOPY bin /bin\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo ok > /ok"]\n' >"$tmp/ctx/Dockerfile"
	buildah --root "$tmp/root" --runroot "$tmp/run" --storage-driver "$driver" \
		bud --isolation chroot --layers -q -t slipway-ci/buildah-check "$tmp/ctx" >"$tmp/log" 2>&1 || rc=$?
	if ((rc)); then
		log "buildah with storage driver $driver failed:"
		tail -n 20 "$tmp/log" >&2
	fi
	buildah --root "$tmp/root" --runroot "$tmp/run" --storage-driver "$driver" rmi -a -f >/dev/null 2>&1 || true
	umount -R "$tmp/root" 2>/dev/null || true
	rm -rf "$tmp"
	return $rc
}

driver=
for d in overlay vfs; do
	if check "$d"; then
		driver=$d
		break
	fi
done
[[ -n $driver ]] || { echo "setup-buildah: buildah cannot build here with overlay or vfs storage" >&2; exit 1; }
log "buildah builds with storage driver $driver and chroot isolation"

mkdir -p "$ENV_DIR"
cat >"$ENV_DIR/buildah.env" <<ENV
# written by scripts/ci/setup-buildah.sh
SLIPWAY_BUILDAH=$(command -v buildah)
SLIPWAY_BUILDAH_STORAGE_DRIVER=$driver
ENV
log "wrote $ENV_DIR/buildah.env"
