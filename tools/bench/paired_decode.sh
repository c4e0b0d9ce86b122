#!/usr/bin/env bash
# Decode speed beside a peer engine on a shared, noisy host: alternates single tg runs engine by
# engine (ours with the F16 head, the peer, ours with --head q8_0), N times, and prints each
# triple's ratios and their medians. Memory bandwidth on a shared host drifts by a third within
# minutes; only runs taken seconds apart compare. Nothing of the peer is built here: point PEER at
# its llama-bench (see docs/PERFORMANCE.md for how the peers were built).
#
#   PEER=/path/to/llama-bench tools/bench/paired_decode.sh MODEL.gguf [N=15] [THREADS=2] [TOKENS=128]
set -euo pipefail
model=${1:?usage: PEER=llama-bench $0 MODEL.gguf [N] [THREADS] [TOKENS]}
n=${2:-15}
threads=${3:-2}
tokens=${4:-128}
ours=${OURS:-target/release/bitnet}
peer=${PEER:?set PEER to the llama-bench of the peer engine}

rate_ours() { "$ours" bench -m "$model" -p 0 -n "$tokens" -r 1 -t "$threads" "$@" 2>/dev/null \
    | awk -F'|' '/ tg/ {split($8, a, " "); print a[1]}'; }
rate_peer() { "$peer" -m "$model" -p 0 -n "$tokens" -r 1 -t "$threads" -o md 2>/dev/null \
    | awk -F'|' '/ tg/ {split($(NF-1), a, " "); print a[1]}'; }

median() { sort -n | awk '{v[NR] = $1} END {printf "%.3f (min %.3f, max %.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }

echo "# $(date -u +%FT%TZ) tg$tokens, $threads threads, $n alternating triples; load $(cut -d' ' -f1-3 /proc/loadavg)"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for i in $(seq "$n"); do
    f16=$(rate_ours); peer_rate=$(rate_peer); q8=$(rate_ours --head q8_0)
    echo "$f16 $peer_rate $q8" | awk -v i="$i" '{
        printf "%2d  ours-f16 %6.2f  peer %6.2f  ours-q8_0 %6.2f   f16/peer %.3f  q8_0/peer %.3f\n",
            i, $1, $2, $3, $1 / $2, $3 / $2 }' | tee -a "$rows"
done
echo "median f16/peer $(awk '{print $9}' "$rows" | median)   median q8_0/peer $(awk '{print $11}' "$rows" | median)"
