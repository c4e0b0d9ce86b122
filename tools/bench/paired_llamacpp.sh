#!/usr/bin/env bash
# bitnet-rs beside llama.cpp (PyPI llama-cpp-python, pinned in requirements-llamacpp.txt) on the
# same GGUF file, paired: N rounds, each one pp and one tg run of ours then of llama.cpp, seconds
# apart (a shared host's speed drifts by a third within minutes; only runs taken together
# compare). Prints each round's rates and ratios (ours ÷ llama.cpp), then the medians.
#
#   PYTHON=venv/bin/python tools/bench/paired_llamacpp.sh MODEL.gguf [N=7] [THREADS=2] [PP=512] [TG=128]
#
# BATCH=8 adds the batched decode of `bitnet bench -b 8` to each round: 8 sequences decoded
# together (aggregate t/s) by both engines, with each engine's gain over its own single-sequence
# decode. PYTHON must import llama_cpp (pip install -r tools/bench/requirements-llamacpp.txt; it
# builds llama.cpp from source, ~15 minutes on 2 cores). OURS defaults to target/release/bitnet.
#
# On a CPU that reports AMX (e.g. a Xeon guest), a `CMAKE_ARGS="-DGGML_NATIVE=ON"` build crashed
# (SIGSEGV in ggml_backend_amx_mul_mat) on every batch of more than one token; build it without AMX:
#   CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
#     -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON
#     -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" pip install -r requirements-llamacpp.txt
set -euo pipefail
model=${1:?usage: PYTHON=python-with-llama_cpp $0 MODEL.gguf [N] [THREADS] [PP] [TG]}
n=${2:-7}
threads=${3:-2}
pp=${4:-512}
tg=${5:-128}
batch=${BATCH:-1}
ours=${OURS:-target/release/bitnet}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
"$python" -c 'import llama_cpp' 2>/dev/null || {
    echo "$python cannot import llama_cpp: pip install -r $here/requirements-llamacpp.txt" >&2
    exit 1
}
[ -x "$ours" ] || { echo "$ours is not built: cargo build --release -p bitnet-cli" >&2; exit 1; }

# Ours: "PP TG [TGxB]" (the t/s column of the pp, tg and batched tg rows).
rates_ours() {
    local b=1
    [ "$batch" -gt 1 ] && b="1,$batch"
    "$ours" bench -m "$model" -p "$pp" -n "$tg" -b "$b" -r 1 -t "$threads" 2>/dev/null \
        | awk -F'|' '$7 ~ /(pp|tg)[0-9]/ {split($8, a, " "); printf "%s ", a[1]} END {print ""}'
}
# llama.cpp: the same, from llamacpp_bench.py's "test t/s" lines.
rates_peer() {
    "$python" "$here/llamacpp_bench.py" "$model" -p "$pp" -n "$tg" -b "$batch" -r 1 -t "$threads" \
        | awk '{printf "%s ", $2} END {print ""}'
}
median() { sort -n | awk '{v[NR] = $1} END {printf "%.3f (min %.3f, max %.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }

echo "# $(date -u +%FT%TZ) $(basename "$model"): pp$pp / tg$tg$([ "$batch" -gt 1 ] && echo " / tg$tg x$batch"), $threads threads, $n paired rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for i in $(seq "$n"); do
    read -r our_pp our_tg our_b <<<"$(rates_ours)"
    read -r peer_pp peer_tg peer_b <<<"$(rates_peer)"
    # A crashed or failed run prints no rate: stop rather than print ratios against zero.
    for v in "$our_pp" "$our_tg" "$peer_pp" "$peer_tg" $([ "$batch" -gt 1 ] && echo "${our_b:-} ${peer_b:-}"); do
        awk -v v="$v" 'BEGIN {exit !(v + 0 > 0)}' || {
            echo "round $i: a run printed no rate (ours: '$our_pp $our_tg ${our_b:-}', llama.cpp: '$peer_pp $peer_tg ${peer_b:-}'); run each engine alone to see why" >&2
            exit 1
        }
    done
    # Columns of $rows: 1 round, 2 pp ratio, 3 tg ratio[, 4 batched ratio, 5 our gain, 6 peer gain].
    echo "$i $our_pp $our_tg $peer_pp $peer_tg ${our_b:-0} ${peer_b:-0}" | awk -v b="$batch" '{
        printf "%2d  ours pp %7.2f tg %6.2f   llama.cpp pp %7.2f tg %6.2f   pp ratio %.3f  tg ratio %.3f\n",
            $1, $2, $3, $4, $5, $2 / $4, $3 / $5 > "/dev/stderr"
        if (b > 1)
            printf "    x%d: ours %7.2f (%.2fx its tg)   llama.cpp %7.2f (%.2fx its tg)   ratio %.3f\n",
                b, $6, $6 / $3, $7, $7 / $5, $6 / $7 > "/dev/stderr"
        printf "%d %.6f %.6f", $1, $2 / $4, $3 / $5
        if (b > 1) printf " %.6f %.6f %.6f", $6 / $7, $6 / $3, $7 / $5
        print ""
    }' 2>&1 >>"$rows"
done
echo "median pp ratio $(awk '{print $2}' "$rows" | median)"
echo "median tg ratio $(awk '{print $3}' "$rows" | median)"
if [ "$batch" -gt 1 ]; then
    echo "median tg x$batch ratio $(awk '{print $4}' "$rows" | median)"
    echo "median batching gain: ours $(awk '{print $5}' "$rows" | median), llama.cpp $(awk '{print $6}' "$rows" | median)"
fi
