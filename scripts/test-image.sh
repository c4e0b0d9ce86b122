#!/usr/bin/env bash
# Runs the server image (deploy/build-image.sh builds it) and checks it end to end with podman:
# the container runs as user 65532, /health answers ok, the image's HEALTHCHECK passes, a chat
# completion answers, the peak RSS under 4 busy slots is printed; then `podman stop` with four
# streams open: every stream ends with its finish chunk and [DONE], the container exits 0.
#
# Usage: scripts/test-image.sh [IMAGE]   (default localhost/bitnet-rs:VERSION)
# Environment: PODMAN_GLOBAL_ARGS  options before `run` (e.g. "--runtime runc")
#              PODMAN_RUN_ARGS     options of `run` (e.g. "--ulimit nproc=1000:1000")
#              PORT                host port (default 18480)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
image="${1:-localhost/bitnet-rs:$(cargo pkgid -p bitnet-cli | sed 's/.*[#@]//')}"
port="${PORT:-18480}"
name="bitnet-image-test-$$"
read -r -a global <<<"${PODMAN_GLOBAL_ARGS:-}"
read -r -a run_args <<<"${PODMAN_RUN_ARGS:-}"
scratch="$(mktemp -d)"
log() { printf '[test-image] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; podman "${global[@]}" logs "$name" >&2 || true; exit 1; }
cleanup() { podman "${global[@]}" rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup EXIT

podman "${global[@]}" run -d --name "$name" "${run_args[@]}" -p "$port:8080" "$image" >/dev/null
for _ in $(seq 1 120); do
    [ "$(curl -s -m 2 "localhost:$port/health" || true)" = '{"status":"ok"}' ] && break
    sleep 0.5
done
[ "$(curl -s -m 2 "localhost:$port/health")" = '{"status":"ok"}' ] || fail "/health never answered ok"
pid="$(podman "${global[@]}" inspect "$name" --format '{{.State.Pid}}')"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
[ "$uid" = 65532 ] || fail "the server runs as uid $uid, not 65532"
podman "${global[@]}" healthcheck run "$name" >/dev/null 2>&1 || fail "the image's HEALTHCHECK failed"
log "running as uid $uid; /health ok; HEALTHCHECK passes; idle $(grep VmRSS "/proc/$pid/status" | tr -s ' \t' ' ')"
answer="$(curl -s -m 60 "localhost:$port/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"messages":[{"role":"user","content":"Who was Moses?"}],"max_tokens":16}')"
grep -q '"object":"chat.completion"' <<<"$answer" || fail "no chat completion: $answer"

stream() { # FILE
    curl -sN -m 120 "localhost:$port/v1/completions" -H 'content-type: application/json' \
        -d '{"prompt":"And it came to pass","max_tokens":490,"ignore_eos":true,"stream":true}' >"$1"
}
for i in 1 2 3 4 5 6; do stream "$scratch/load$i" & done
sleep 1
busy="$(curl -s "localhost:$port/metrics" | grep -E '^bitnet_active_slots ' || true)"
wait
log "under load ($busy): $(grep VmHWM "/proc/$pid/status" | tr -s ' \t' ' ') peak"

for i in 1 2 3 4; do stream "$scratch/drain$i" & done
sleep 0.7
podman "${global[@]}" stop -t 40 "$name" >/dev/null &
wait
code="$(podman "${global[@]}" inspect "$name" --format '{{.State.ExitCode}}')"
[ "$code" = 0 ] || fail "the container exited with $code after podman stop"
for i in 1 2 3 4; do
    ending="$(tail -n 4 "$scratch/drain$i")"
    grep -q '^data: \[DONE\]' <<<"$ending" || fail "stream $i has no [DONE]"
    grep -q '"finish_reason":"length"' "$scratch/drain$i" || fail "stream $i has no finish chunk"
done
server_log="$(podman "${global[@]}" logs "$name" 2>&1)"
grep -q "shutting down: " <<<"$server_log" || fail "no drain in the log"
log "podman stop with 4 streams open: all ended with their finish chunk and [DONE]; exit 0"
log "ok: $image"
