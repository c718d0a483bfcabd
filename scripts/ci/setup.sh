#!/usr/bin/env bash
# Prepare this machine for Slipway's CI: system packages, a running Docker
# engine that can really run containers, and a small busybox image.
#
# Idempotent: every step checks before it acts, so running it again on a
# prepared machine only re-verifies the engine (a few seconds).
#
# What it leaves behind:
#   - packages: docker.io, docker-registry, busybox-static, iproute2, nginx, wrk
#     (nginx's own system service is kept stopped; tests run nginx with their
#     own config)
#   - dockerd running in the background on unix:///var/run/docker.sock,
#     log in $SLIPWAY_DOCKERD_LOG (default /tmp/dockerd.log)
#   - image slipway-ci/busybox:latest (static busybox, nothing else)
#   - $SLIPWAY_CI_ENV_FILE (default /run/slipway-ci/docker.env), shell
#     assignments describing what this engine can do; .ci/run sources it and
#     internal/testenv reads it when the variables are not in the environment:
#       SLIPWAY_DOCKER_HOST         the engine's address
#       SLIPWAY_DOCKER_NETWORK      "bridge" when -p 127.0.0.1:H:C works,
#                                   "host" when containers must use --network host
#       SLIPWAY_DOCKER_PUBLISH      1 when published ports work, else 0
#       SLIPWAY_DOCKER_STORAGE_DRIVER, SLIPWAY_DOCKERD_FLAGS  for the record
#       SLIPWAY_BUSYBOX_IMAGE       slipway-ci/busybox:latest
#
# Knobs (environment):
#   SLIPWAY_DOCKERD_ATTEMPTS  ';'-separated list of dockerd flag sets to try in
#                             order (default: see DEFAULT_ATTEMPTS below)
#   SLIPWAY_SKIP_DOCKER=1     install packages only; don't start or check docker
set -euo pipefail

log() { printf '[setup %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[setup %s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
	die "must run as root (installs packages and starts dockerd)"
fi

export DEBIAN_FRONTEND=noninteractive
DOCKER_SOCK=/var/run/docker.sock
DOCKERD_LOG=${SLIPWAY_DOCKERD_LOG:-/tmp/dockerd.log}
ENV_FILE=${SLIPWAY_CI_ENV_FILE:-/run/slipway-ci/docker.env}
BUSYBOX_IMAGE=slipway-ci/busybox:latest
# Tried in order until one gives an engine that runs a container. The first is
# what works on a normal VM; the others cover sandboxes without iptables, without
# bridge networking, or without a usable overlay filesystem.
DEFAULT_ATTEMPTS='
;--iptables=false
;--iptables=false --bridge=none
;--storage-driver=vfs
;--storage-driver=vfs --iptables=false
;--storage-driver=vfs --iptables=false --bridge=none'
ATTEMPTS=${SLIPWAY_DOCKERD_ATTEMPTS:-$DEFAULT_ATTEMPTS}

SECONDS=0

# ---------------------------------------------------------------- packages --

# command -> Debian package that provides it
declare -A WANT=(
	[dockerd]=docker.io
	[docker-registry]=docker-registry
	[ip]=iproute2
	[nginx]=nginx
	[wrk]=wrk
)

missing=()
for cmd in "${!WANT[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd && ! -x /usr/bin/$cmd ]]; then
		missing+=("${WANT[$cmd]}")
	fi
done
# busybox-static: /bin/busybox must exist and be the static build (the
# dynamic "busybox" package installs the same path).
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
	missing+=(busybox-static)
fi

if ((${#missing[@]})); then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing: ${missing[*]}"
	# Only refresh the package lists when they are absent or stale (>6 h), or
	# when a package is unknown to them.
	need_update=1
	if [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 -print -quit 2>/dev/null) ]]; then
		need_update=0
		for p in "${missing[@]}"; do
			if ! apt-cache show "$p" >/dev/null 2>&1; then need_update=1; fi
		done
	fi
	if ((need_update)); then
		log "apt-get update"
		apt-get update -qq || die "apt-get update failed"
	fi
	# Keep maintainer scripts from starting services (nginx would take port 80,
	# docker.io would try systemd): a policy-rc.d that says no, unless the
	# machine already has one.
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	rc=0
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" >/tmp/slipway-apt-install.log 2>&1 || rc=$?
	if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
	if ((rc)); then
		tail -n 40 /tmp/slipway-apt-install.log >&2
		die "apt-get install ${missing[*]} failed (exit $rc)"
	fi
	log "packages installed (${SECONDS}s)"
else
	log "packages already installed"
fi

# nginx's system service must not run: benchmarks start nginx with their own
# config and ports. Stop it only if it is the packaged service (its pid file).
if [[ -s /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
	log "stopping nginx system service"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
		systemctl stop nginx || true
	else
		/usr/sbin/nginx -s quit 2>/dev/null || kill "$(cat /run/nginx.pid)" || true
	fi
fi
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
	systemctl disable --quiet nginx 2>/dev/null || true
fi
if [[ -x /usr/sbin/update-rc.d ]] && compgen -G '/etc/rc[2-5].d/S*nginx' >/dev/null; then
	update-rc.d nginx disable >/dev/null 2>&1 || true
fi

# The container image and testenv.BusyboxPath need the static build.
if [[ ! -x /bin/busybox ]]; then
	die "/bin/busybox is missing after installing busybox-static"
fi
if ldd /bin/busybox >/dev/null 2>&1; then
	die "/bin/busybox is dynamically linked; reinstall busybox-static"
fi

if [[ ${SLIPWAY_SKIP_DOCKER:-0} == 1 ]]; then
	log "SLIPWAY_SKIP_DOCKER=1: not starting docker (${SECONDS}s)"
	exit 0
fi

# ------------------------------------------------------------------ docker --

# Use the default socket unless the caller points elsewhere.
export DOCKER_HOST=${DOCKER_HOST:-unix://$DOCKER_SOCK}

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

STARTED_PID=
STARTED_FLAGS=

# log_tail N: the last N interesting lines of the dockerd log (its info lines
# are mostly gRPC chatter).
log_tail() {
	grep -v 'level=info' "$DOCKERD_LOG" | tail -n "$1" | sed 's/^/    /' >&2
}

# start_dockerd FLAGS: start dockerd in its own session so it outlives this
# script and CI's process group, wait up to 30 s for it to answer.
start_dockerd() {
	local flags=$1
	log "starting dockerd ${flags:-(default flags)}"
	{
		printf '\n===== %s dockerd %s =====\n' "$(date -u +%FT%TZ)" "$flags"
	} >>"$DOCKERD_LOG"
	# shellcheck disable=SC2086 # flags are word-split on purpose
	setsid nohup dockerd --host "unix://$DOCKER_SOCK" $flags </dev/null >>"$DOCKERD_LOG" 2>&1 &
	STARTED_PID=$!
	STARTED_FLAGS=$flags
	local i
	for ((i = 0; i < 60; i++)); do
		if engine_up; then
			log "dockerd (pid $STARTED_PID) answers after $((i / 2)).$((i % 2 * 5))s"
			return 0
		fi
		if ! kill -0 "$STARTED_PID" 2>/dev/null; then
			log "dockerd exited during startup; log tail:"
			log_tail 15
			STARTED_PID=
			return 1
		fi
		sleep 0.5
	done
	log "dockerd did not answer within 30s; log tail:"
	log_tail 25
	stop_started_dockerd
	return 1
}

# stop_started_dockerd: end the dockerd this script started (and only it).
stop_started_dockerd() {
	[[ -n $STARTED_PID ]] || return 0
	log "stopping dockerd pid $STARTED_PID"
	kill "$STARTED_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 40; i++)); do
		kill -0 "$STARTED_PID" 2>/dev/null || break
		sleep 0.5
	done
	kill -9 "$STARTED_PID" 2>/dev/null || true
	STARTED_PID=
	rm -f /var/run/docker.pid
}

# ensure_busybox_image: import a one-file image from the static busybox.
# Deterministic tar (fixed owner, mtime, order), so the image is the same
# every time; re-imported only when missing or when busybox changed.
ensure_busybox_image() {
	local want have
	want=$(sha256sum /bin/busybox | cut -d' ' -f1)
	have=$(docker image inspect -f '{{index .Config.Labels "slipway.ci.busybox-sha256"}}' "$BUSYBOX_IMAGE" 2>/dev/null || true)
	if [[ $have == "$want" ]]; then
		return 0
	fi
	local dir
	dir=$(mktemp -d)
	mkdir -p "$dir/root/bin" "$dir/root/tmp"
	cp /bin/busybox "$dir/root/bin/busybox"
	chmod 0755 "$dir/root/bin/busybox"
	chmod 1777 "$dir/root/tmp"
	local a
	for a in sh env cat sleep wget echo true false ls mkdir rm nc httpd; do
		ln -s busybox "$dir/root/bin/$a"
	done
	tar -C "$dir/root" --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime='2000-01-01 00:00:00Z' -cf "$dir/busybox.tar" bin tmp
	docker import \
		--change 'ENV PATH=/bin' \
		--change "LABEL slipway.ci.busybox-sha256=$want" \
		--change 'CMD ["/bin/sh"]' \
		"$dir/busybox.tar" "$BUSYBOX_IMAGE" >/dev/null
	rm -rf "$dir"
	log "imported $BUSYBOX_IMAGE"
}

# can_run: a container starts and exits 0 with host networking.
can_run() {
	ensure_busybox_image || return 1
	timeout 60 docker run --rm --network host "$BUSYBOX_IMAGE" /bin/busybox true
}

free_port() {
	local p
	for ((p = 20000 + RANDOM % 20000; ; p++)); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# can_publish: a bridge-networked container's port, published on 127.0.0.1,
# answers an HTTP request from the host.
can_publish() {
	local port name ok=1 i
	port=$(free_port)
	name=slipway-ci-publish-check-$$
	docker rm -f "$name" >/dev/null 2>&1 || true
	if ! timeout 60 docker run -d --name "$name" -p "127.0.0.1:$port:8080" "$BUSYBOX_IMAGE" \
		/bin/busybox sh -c 'mkdir -p /www && echo slipway-publish-ok >/www/index.html && exec httpd -f -p 8080 -h /www' >/dev/null 2>/tmp/slipway-publish-check.err; then
		log "publish check: container did not start: $(tail -n 3 /tmp/slipway-publish-check.err)"
		docker rm -f "$name" >/dev/null 2>&1 || true
		return 1
	fi
	for ((i = 0; i < 20; i++)); do
		# No "wget -T": Debian's busybox-static 1.35 wget segfaults with it.
		if timeout 3 /bin/busybox wget -q -O - "http://127.0.0.1:$port/" 2>/dev/null | grep -q slipway-publish-ok; then
			ok=0
			break
		fi
		sleep 0.5
	done
	docker rm -f "$name" >/dev/null 2>&1 || true
	return $ok
}

docker_t0=$SECONDS
if engine_up; then
	log "a docker engine already answers at $DOCKER_HOST"
	if ! can_run; then
		die "the running docker engine cannot run a container; see 'docker info' and $DOCKERD_LOG"
	fi
	flags_used=$(ps -o args= -C dockerd 2>/dev/null | head -n 1 || true)
else
	[[ $DOCKER_HOST == "unix://$DOCKER_SOCK" ]] ||
		die "DOCKER_HOST=$DOCKER_HOST does not answer and is not the socket this script manages"
	command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
	# A dockerd that is alive but not answering (still starting, or wedged)
	# holds the pid file: give it time rather than start a second one.
	if [[ -s /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
		log "dockerd pid $(cat /var/run/docker.pid) exists but does not answer; waiting up to 30s"
		for ((i = 0; i < 30; i++)); do engine_up && break; sleep 1; done
		engine_up || die "dockerd pid $(cat /var/run/docker.pid) does not answer; stop it and re-run"
	fi
	ok=0
	if ! engine_up; then
		IFS=';' read -r -a attempts <<<"${ATTEMPTS//$'\n'/}"
		((${#attempts[@]})) || attempts=("")
		for flags in "${attempts[@]}"; do
			flags=$(echo "$flags" | xargs) # trim
			if start_dockerd "$flags"; then
				if can_run; then
					ok=1
					break
				fi
				log "dockerd ${flags:-(default flags)} started but cannot run a container; log tail:"
				log_tail 15
				stop_started_dockerd
			fi
		done
		((ok)) || die "no dockerd configuration could run a container; full log: $DOCKERD_LOG"
	fi
	flags_used="dockerd --host unix://$DOCKER_SOCK${STARTED_FLAGS:+ $STARTED_FLAGS}"
fi

network=host
publish=0
if can_publish; then
	network=bridge
	publish=1
	log "bridge networking with -p 127.0.0.1:H:C works"
else
	log "published ports do NOT work here: tests must use --network host (SLIPWAY_DOCKER_NETWORK=host)"
fi
driver=$(docker info -f '{{.Driver}}' 2>/dev/null || echo unknown)

mkdir -p "$(dirname "$ENV_FILE")"
tmp=$(mktemp "$ENV_FILE.XXXXXX")
cat >"$tmp" <<EOF
# Written by scripts/ci/setup.sh at $(date -u +%FT%TZ); describes the docker engine on this machine.
SLIPWAY_DOCKER_HOST=$DOCKER_HOST
SLIPWAY_DOCKER_NETWORK=$network
SLIPWAY_DOCKER_PUBLISH=$publish
SLIPWAY_DOCKER_STORAGE_DRIVER=$driver
SLIPWAY_DOCKERD_FLAGS='${flags_used//\'/}'
SLIPWAY_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
EOF
chmod 0644 "$tmp"
mv -f "$tmp" "$ENV_FILE"

log "docker ready in $((SECONDS - docker_t0))s: driver=$driver network=$network flags='${flags_used}' env=$ENV_FILE"
log "setup done in ${SECONDS}s"
