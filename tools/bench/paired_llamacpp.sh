#!/usr/bin/env bash
# bitnet-rs beside llama.cpp (PyPI llama-cpp-python, pinned in requirements-llamacpp.txt) on the
# same GGUF file, paired: N rounds, each one pp and one tg run of ours then of llama.cpp, seconds
# apart (a shared host's speed drifts by a third within minutes; only runs taken together
# compare). Prints each round's rates and ratios, then the medians.
#
#   PYTHON=venv/bin/python tools/bench/paired_llamacpp.sh MODEL.gguf [N=7] [THREADS=2] [PP=512] [TG=128]
#
# PYTHON must import llama_cpp (pip install -r tools/bench/requirements-llamacpp.txt; it builds
# llama.cpp from source, ~15 minutes on 2 cores). OURS defaults to target/release/bitnet.
set -euo pipefail
model=${1:?usage: PYTHON=python-with-llama_cpp $0 MODEL.gguf [N] [THREADS] [PP] [TG]}
n=${2:-7}
threads=${3:-2}
pp=${4:-512}
tg=${5:-128}
ours=${OURS:-target/release/bitnet}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
"$python" -c 'import llama_cpp' 2>/dev/null || {
    echo "$python cannot import llama_cpp: pip install -r $here/requirements-llamacpp.txt" >&2
    exit 1
}

# One pp and one tg rate of ours: "PP TG".
rates_ours() {
    "$ours" bench -m "$model" -p "$pp" -n "$tg" -r 1 -t "$threads" 2>/dev/null \
        | awk -F'|' '/ pp| tg/ {split($8, a, " "); printf "%s ", a[1]} END {print ""}'
}
rates_peer() {
    "$python" "$here/llamacpp_bench.py" "$model" -p "$pp" -n "$tg" -r 1 -t "$threads" \
        | awk '{printf "%s ", $2} END {print ""}'
}
median() { sort -n | awk '{v[NR] = $1} END {printf "%.3f (min %.3f, max %.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }

echo "# $(date -u +%FT%TZ) $(basename "$model"): pp$pp / tg$tg, $threads threads, $n paired rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for i in $(seq "$n"); do
    read -r our_pp our_tg <<<"$(rates_ours)"
    read -r peer_pp peer_tg <<<"$(rates_peer)"
    echo "$our_pp $our_tg $peer_pp $peer_tg" | awk -v i="$i" '{
        printf "%2d  ours pp %7.2f tg %6.2f   llama.cpp pp %7.2f tg %6.2f   pp ratio %.3f  tg ratio %.3f\n",
            i, $1, $2, $3, $4, $1 / $3, $2 / $4 }' | tee -a "$rows"
done
echo "median pp ratio $(awk '{print $14}' "$rows" | median)"
echo "median tg ratio $(awk '{print $16}' "$rows" | median)"
