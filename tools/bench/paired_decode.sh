#!/usr/bin/env bash
# Decode speed beside a peer engine on a shared, noisy host: alternates single tg runs engine by
# engine (ours with the F16 head, the peer, ours with --head q8_0), N times, and prints each
# triple's ratios and their medians. Memory bandwidth on a shared host drifts by a third within
# minutes; only runs taken seconds apart compare. Nothing of the peer is built here: point PEER at
# its llama-bench (see docs/PERFORMANCE.md for how the peers were built).
#
#   PEER=/path/to/llama-bench tools/bench/paired_decode.sh MODEL.gguf [N=15] [THREADS=2] [TOKENS=128]
#
# GB_PER_TOKEN=G (the gigabytes one token streams with the F16 head: 1.076 for 2B-4T, trit5
# linears 419 MB + F16 head 657 MB) adds a `bitnet bench --bandwidth` reading at THREADS before
# every triple and prints ours-f16 × G ÷ that reading, the share of the host's read bandwidth
# the decode streams, measured seconds apart (a shared host's bandwidth swings by 2× or more
# within minutes, so one reading for a whole run says little).
set -euo pipefail
model=${1:?usage: PEER=llama-bench $0 MODEL.gguf [N] [THREADS] [TOKENS]}
n=${2:-15}
threads=${3:-2}
tokens=${4:-128}
ours=${OURS:-target/release/bitnet}
gb_per_token=${GB_PER_TOKEN:-}
peer=${PEER:?set PEER to the llama-bench of the peer engine}

rate_ours() { "$ours" bench -m "$model" -p 0 -n "$tokens" -r 1 -t "$threads" "$@" 2>/dev/null \
    | awk -F'|' '/ tg/ {split($8, a, " "); print a[1]}'; }
rate_peer() { "$peer" -m "$model" -p 0 -n "$tokens" -r 1 -t "$threads" -o md 2>/dev/null \
    | awk -F'|' '/ tg/ {split($(NF-1), a, " "); print a[1]}'; }

read_bandwidth() { "$ours" bench --bandwidth -t "$threads" -r 3 2>/dev/null \
    | awk -F'|' '/ read / {print $4 + 0}'; }
median() { sort -n | awk '{v[NR] = $1} END {printf "%.3f (min %.3f, max %.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }

echo "# $(date -u +%FT%TZ) tg$tokens, $threads threads, $n alternating triples; load $(cut -d' ' -f1-3 /proc/loadavg)"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for i in $(seq "$n"); do
    bw=; [ -n "$gb_per_token" ] && bw=$(read_bandwidth)
    f16=$(rate_ours); peer_rate=$(rate_peer); q8=$(rate_ours --head q8_0)
    echo "$f16 $peer_rate $q8 ${bw:-0}" | awk -v i="$i" -v g="${gb_per_token:-0}" '{
        printf "%2d  ours-f16 %6.2f  peer %6.2f  ours-q8_0 %6.2f   f16/peer %.3f  q8_0/peer %.3f",
            i, $1, $2, $3, $1 / $2, $3 / $2
        if ($4 > 0) printf "   read %5.1f GB/s  f16 share %.3f", $4, $1 * g / $4
        printf "\n" }' | tee -a "$rows"
done
echo "median f16/peer $(awk '{print $9}' "$rows" | median)   median q8_0/peer $(awk '{print $11}' "$rows" | median)"
if [ -n "$gb_per_token" ]; then
    echo "median f16 share of the read bandwidth $(awk '{print $17}' "$rows" | median)"
fi
