#!/usr/bin/env bash
# Writes the licence files of everything linked into the `bitnet` binary to OUT_DIR (the
# container image carries them in /licenses):
#   OUT_DIR/THIRD-PARTY.txt        one line per crate: name, version, licence expression, files
#   OUT_DIR/crates/NAME-VERSION/   that crate's LICENSE* / COPYING* / NOTICE* / UNLICENSE files
#   OUT_DIR/bitnet-rs.txt          the project's own licence (the workspace's `license`, and the
#                                  repository's LICENSE* files when it has any)
# The crates are those of `cargo tree -e normal` for bitnet-cli on TARGET (default
# x86_64-unknown-linux-gnu), read from Cargo's registry sources (run `cargo fetch` first; a crate
# without its sources there is an error, never skipped).
#
# Usage: deploy/collect-licenses.sh OUT_DIR [TARGET]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: deploy/collect-licenses.sh OUT_DIR [TARGET]}"
target="${2:-x86_64-unknown-linux-gnu}"
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"

rm -rf "$out"
mkdir -p "$out/crates"
summary="$out/THIRD-PARTY.txt"
{
    echo "Third-party crates linked into the bitnet binary (cargo tree -e normal, $target)."
    echo "name version | licence (Cargo.toml) | files in crates/NAME-VERSION/"
} >"$summary"

count=0
while IFS='|' read -r package licence; do
    # `{p}` is "name vVERSION" and, for the workspace's own crates, " (/path)"; lines of crates
    # already shown end in " (*)" (removed above).
    case "$package" in *" ($here"*) continue ;; esac
    name="${package%% *}"
    version="${package#* v}"
    version="${version%% *}"
    dir="$(find "$registry" -mindepth 2 -maxdepth 2 -type d -name "$name-$version" -print -quit)"
    if [ -z "$dir" ]; then
        echo "collect-licenses: no sources for $name $version under $registry (run cargo fetch)" >&2
        exit 1
    fi
    dest="$out/crates/$name-$version"
    mkdir -p "$dest"
    files=()
    while IFS= read -r -d '' file; do
        cp "$file" "$dest/"
        files+=("$(basename "$file")")
    done < <(find "$dir" -maxdepth 1 -type f \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' \
        -o -iname 'NOTICE*' -o -iname 'UNLICENSE*' -o -iname 'COPYRIGHT*' \) -print0 | sort -z)
    if [ ${#files[@]} -eq 0 ]; then
        rmdir "$dest"
        files=("(the crate ships no licence file)")
    fi
    echo "$name $version | ${licence:-unknown} | ${files[*]}" >>"$summary"
    count=$((count + 1))
done < <(cd "$here" && cargo tree --locked -p bitnet-cli -e normal --target "$target" \
    --prefix none -f '{p}|{l}' | sed 's/ (\*)$//' | sort -u)

version="$(cd "$here" && cargo pkgid -p bitnet-cli | sed 's/.*[#@]//')"
licence="$(sed -n 's/^license *= *"\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
{
    echo "bitnet-rs $version is licensed under: $licence (the workspace's Cargo.toml)."
    for file in "$here"/LICEN[CS]E* "$here"/COPYING*; do
        [ -f "$file" ] || continue
        echo
        echo "=== $(basename "$file") ==="
        cat "$file"
    done
} >"$out/bitnet-rs.txt"
echo "collect-licenses: $count third-party crates -> $out" >&2
