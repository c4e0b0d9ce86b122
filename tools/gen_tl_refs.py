#!/usr/bin/env python3
"""Regenerate the TL1 / TL2 reference fixtures in crates/bitnet-quant/tests/data/tl/.

The fixtures are made by running Microsoft bitnet.cpp's own Python code, unchanged, from a
checkout the user supplies; nothing of that code is copied into this script. What it does
(also described in the module doc of crates/bitnet-quant/tests/tl_reference.rs):

1. For each format (TL1, TL2) and each model of `ModelShapeDict` in
   `utils/codegen_tl{1,2}.py` (read with `ast.literal_eval`, in its order), the codegen
   script runs as a subprocess with the `--model/--BM/--BK/--bm` arguments that
   `setup_env.py` passes it (parsed out of setup_env.py with `ast`: TL1 from the arm64
   branch, TL2 from the x86 branch). It runs from a copy placed at `<tmp>/utils/`, so it
   writes `<tmp>/include/kernel_config.ini` and leaves the user's checkout untouched. Each
   shape's `[Kernels_i]` section of that file is recorded as `kernel_config`.
2. Shapes are `M x K` = `ModelShapeDict[model][i]` (M = ne1, K = ne0). Case number `n`
   (0-based, TL1 cases first, then TL2, models and shapes in codegen order) uses
   `seed = 0x07B10000 + n + 1` and `scale = f32((20 + 3n) / 1000)` (0.020, 0.023, ...).
   The ternary matrix `t` is splitmix64 in counter mode from `seed`: element `i` (row-major,
   0-based) is `mix(seed + (i+1) * 0x9E3779B97F4A7C15) % 3 - 1` (u64 wrapping arithmetic).
   `W = t * scale` (float32, shape (M, K)) goes through `transform_to_tl1` /
   `transform_to_tl2` and the helpers they call, taken with `ast` from
   `utils/convert-hf-to-gguf-bitnet.py` (together with that file's own
   `from __future__ import annotations` and `import numpy as np`) and executed as they are,
   with the working directory set to the folder holding that `include/kernel_config.ini`.
3. The fork's gguf-py `GGUFWriter` writes `name` (raw_shape (M, K), raw_dtype TL1/TL2) and
   `name_scale` (F32), as the converter does, followed by write_header_to_file,
   write_kv_data_to_file, write_tensors_to_file and close. The tensor's bytes are cut from
   that file at its offset (parsed from the file), with the length of the fork's
   `ggml_nbytes` (ggml/src/ggml.c of Eddie-Wang1120/llama.cpp at 406a5036, written out below
   as `fork_ggml_nbytes`); `n_tensor_infos` is the tensor count in the file's header.

manifest.json gets, per case, the sha256 of `t` (as i8 bytes) and of the tensor bytes; the
tensor bytes themselves are written for the smallest tensor of each format
(`tl1_1536x1536.bin`, `tl2_1536x1536.bin`).

Inputs (not committed here):
  --bitnet-cpp DIR  a checkout of github.com/microsoft/BitNet at
                    16da220ae2b510caff437d403288882687f44ae5 (setup_env.py, utils/)
  --gguf-py DIR     the gguf-py folder of github.com/Eddie-Wang1120/llama.cpp, branch merge-dev,
                    commit 406a5036f9a8aaee9ec5e96e652f61691340fe95 (BitNet's 3rdparty/llama.cpp)

Usage (from the repository root):
  python3 tools/gen_tl_refs.py --bitnet-cpp /path/to/BitNet \
      --gguf-py /path/to/llama.cpp/gguf-py [--out crates/bitnet-quant/tests/data/tl]

The fork's gguf-py is imported from --gguf-py ahead of any installed `gguf` (PyPI's gguf, as in
tools/requirements.txt, has no TL1/TL2 and is refused). Python packages (PyPI): numpy, plus
what the fork's `gguf` package imports when loaded: pyyaml and sentencepiece (the fork's
pyproject.toml asks for >=0.1.98,<=0.2.0). Checked on
CPython 3.11.7 with numpy 2.4.6 and with numpy 1.26.4 (the fork's pin), pyyaml 6.0.4,
sentencepiece 0.2.0: both regenerate the committed files byte for byte. It takes about a
minute; peak memory is a few GB (the largest matrix is 14336 x 4096).
"""

from __future__ import annotations

import argparse
import ast
import configparser
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

FORMATS = ("TL1", "TL2")
SEED_BASE = 0x07B1_0000
GOLDEN_GAMMA = 0x9E37_79B9_7F4A_7C15
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "crates/bitnet-quant/tests/data/tl"


# ---------------------------------------------------------------------------------------------
# The seeded ternary matrix (same rule as `ternary_values` in tests/tl_reference.rs).


def ternary_values(seed: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.int8)
    chunk = 1 << 22
    seed64 = np.uint64(seed)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        i = np.arange(start + 1, stop + 1, dtype=np.uint64)
        z = seed64 + i * np.uint64(GOLDEN_GAMMA)  # array arithmetic wraps mod 2**64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58_476D_1CE4_E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D0_49BB_1331_11EB)
        z ^= z >> np.uint64(31)
        out[start:stop] = (z % np.uint64(3)).astype(np.int8) - 1
    return out


def case_seed(n: int) -> int:
    return SEED_BASE + n + 1


def case_scale(n: int) -> np.float32:
    return np.float32((20 + 3 * n) / 1000)


# ---------------------------------------------------------------------------------------------
# bitnet.cpp: setup_env.py arguments, codegen shapes, converter functions (all read at run time).


def codegen_arguments(setup_env: Path) -> dict[tuple[str, str], list[str]]:
    """(format, model) -> the argv setup_env.py gives utils/codegen_tl{1,2}.py."""
    tree = ast.parse(setup_env.read_text(), filename=str(setup_env))
    found: dict[tuple[str, str], list[str]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "run_command" and node.args
                and isinstance(node.args[0], ast.List)):
            continue
        argv = [e.value for e in node.args[0].elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if not argv or argv[0] not in ("utils/codegen_tl1.py", "utils/codegen_tl2.py"):
            continue
        fmt = "TL1" if argv[0].endswith("tl1.py") else "TL2"
        model = argv[argv.index("--model") + 1]
        key = (fmt, model)
        if key in found and found[key] != argv:
            raise SystemExit(f"setup_env.py runs {argv[0]} for {model} with two argument sets")
        found[key] = argv
    return found


def model_shapes(codegen: Path) -> dict[str, list[list[int]]]:
    """`ModelShapeDict` of a codegen script: model -> [[M, K], ...]."""
    tree = ast.parse(codegen.read_text(), filename=str(codegen))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "ModelShapeDict"):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no ModelShapeDict in {codegen}")


def run_codegen(codegen: Path, argv: list[str], workdir: Path) -> str:
    """Runs the unchanged codegen script from <workdir>/utils; returns kernel_config.ini."""
    (workdir / "utils").mkdir(parents=True)
    (workdir / "include").mkdir()
    shutil.copyfile(codegen, workdir / "utils" / codegen.name)
    subprocess.run([sys.executable, *argv], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    return (workdir / "include" / "kernel_config.ini").read_text()


def load_transforms(converter: Path) -> dict:
    """transform_to_tl1/2 and every module-level function they reach, executed as written."""
    tree = ast.parse(converter.read_text(), filename=str(converter))
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    needed: set[str] = set()
    stack = ["transform_to_tl1", "transform_to_tl2"]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        if name not in defs:
            raise SystemExit(f"{converter} defines no {name}")
        needed.add(name)
        for sub in ast.walk(defs[name]):
            if isinstance(sub, ast.Name) and sub.id in defs:
                stack.append(sub.id)

    def wanted(node: ast.stmt) -> bool:
        if isinstance(node, ast.FunctionDef):
            return node.name in needed
        if isinstance(node, ast.ImportFrom):
            return node.module == "__future__"
        if isinstance(node, ast.Import):
            return [a.name for a in node.names] == ["numpy"]
        return False

    module = ast.Module(body=[n for n in tree.body if wanted(n)], type_ignores=[])
    namespace: dict = {"__name__": "bitnet_cpp_converter_extract"}
    exec(compile(module, str(converter), "exec", dont_inherit=True), namespace)
    print(f"executing from {converter.name}: {', '.join(sorted(needed))}", file=sys.stderr)
    return namespace


@contextmanager
def working_directory(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def ini_sections(text: str) -> list[str]:
    """The `[Kernels_i]` blocks of kernel_config.ini as text, in file order."""
    return [b.strip() for b in text.strip().split("\n\n")]


# ---------------------------------------------------------------------------------------------
# The fork's GGUF writer, its ggml_nbytes, and the file's tensor offsets.


def fork_ggml_nbytes(fmt: str, ne0: int, ne1: int) -> int:
    """ggml_nbytes() of the fork (ggml/src/ggml.c, 406a5036) for a 2-D TL1/TL2 tensor
    (blck_size 1, type_size 1: the plain element count ne0*ne1 before its TL adjustments)."""
    nbytes = ne0 * ne1
    if fmt == "TL1":
        return nbytes // 4 + 32
    nbytes = (ne0 - 256) * ne1 // 3 * 5 // 8 + 256 * ne1 // 2 * 4 // 8
    if nbytes % 32 != 0:
        nbytes = 32 - nbytes % 32 + nbytes
    return nbytes + 32


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
           12: "d"}


def gguf_tensors(buf: bytes) -> tuple[int, dict[str, int]]:
    """(tensor count from the header, name -> absolute data offset) of a little-endian GGUF."""
    magic, _version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    assert magic == b"GGUF", magic
    pos = 24

    def string(p: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", buf, p)
        return buf[p + 8:p + 8 + n].decode(), p + 8 + n

    def value(vtype: int, p: int):
        if vtype == 8:
            return string(p)
        if vtype == 9:
            etype, count = struct.unpack_from("<IQ", buf, p)
            p += 12
            items = []
            for _ in range(count):
                item, p = value(etype, p)
                items.append(item)
            return items, p
        fmt = "<" + _SCALAR[vtype]
        return struct.unpack_from(fmt, buf, p)[0], p + struct.calcsize(fmt)

    alignment = 32
    for _ in range(n_kv):
        key, pos = string(pos)
        (vtype,) = struct.unpack_from("<I", buf, pos)
        val, pos = value(vtype, pos + 4)
        if key == "general.alignment":
            alignment = val
    offsets = {}
    for _ in range(n_tensors):
        name, pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        pos += 4 + 8 * n_dims
        _dtype, offset = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        offsets[name] = offset
    data_start = (pos + alignment - 1) // alignment * alignment
    return n_tensors, {k: data_start + v for k, v in offsets.items()}


def write_with_fork_writer(gguf, path: Path, fmt: str, packed: np.ndarray, scale, m: int,
                           k: int) -> tuple[int, bytes]:
    name = "blk.0.tl_reference.weight"
    qtype = gguf.GGMLQuantizationType[fmt]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BITNET])
    writer.add_tensor(name, packed, raw_shape=(m, k), raw_dtype=qtype)
    writer.add_tensor(name + "_scale", scale, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    buf = path.read_bytes()
    n_tensor_infos, offsets = gguf_tensors(buf)
    start = offsets[name]
    length = fork_ggml_nbytes(fmt, k, m)
    if start + length > len(buf):
        raise SystemExit(f"{fmt} {m}x{k}: ggml_nbytes {length} runs past the end of the file")
    return n_tensor_infos, buf[start:start + length]


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bitnet-cpp", type=Path, required=True,
                    help="checkout of microsoft/BitNet at 16da220ae2b5")
    ap.add_argument("--gguf-py", type=Path, required=True,
                    help="gguf-py folder of Eddie-Wang1120/llama.cpp merge-dev (406a5036)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output folder (default: %(default)s)")
    args = ap.parse_args()
    bitnet = args.bitnet_cpp.resolve()
    out = args.out.resolve()

    sys.path.insert(0, str(args.gguf_py.resolve()))
    import gguf  # the fork's gguf-py

    if not hasattr(gguf.GGMLQuantizationType, "TL1"):
        raise SystemExit(f"{gguf.__file__} is not the fork's gguf-py (it has no TL1 type)")

    transforms = load_transforms(bitnet / "utils" / "convert-hf-to-gguf-bitnet.py")
    setup_args = codegen_arguments(bitnet / "setup_env.py")

    entries = []
    smallest: dict[str, tuple[int, str, bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="gen_tl_refs.") as tmp_name:
        tmp = Path(tmp_name)
        n = 0
        for fmt in FORMATS:
            codegen = bitnet / "utils" / f"codegen_{fmt.lower()}.py"
            transform = transforms[f"transform_to_{fmt.lower()}"]
            for model, shapes in model_shapes(codegen).items():
                workdir = tmp / fmt / model
                ini = run_codegen(codegen, setup_args[(fmt, model)], workdir)
                sections = ini_sections(ini)
                assert len(sections) == len(shapes), (fmt, model, sections)
                for j, (m, k) in enumerate(shapes):
                    section = sections[j]
                    parsed = configparser.ConfigParser()
                    parsed.read_string(section)
                    kernel = parsed[f"Kernels_{j}"]
                    assert (int(kernel["m"]), int(kernel["k"])) == (m, k), section

                    seed, scale = case_seed(n), case_scale(n)
                    t = ternary_values(seed, m * k)
                    w = t.reshape(m, k).astype(np.float32) * scale
                    with working_directory(workdir):
                        packed, i2_scale = transform(w)
                    del w
                    assert packed.dtype == np.uint8 and i2_scale.dtype == np.float32
                    assert i2_scale == scale, (i2_scale, scale)
                    n_infos, tensor = write_with_fork_writer(
                        gguf, tmp / f"{n}.gguf", fmt, packed, i2_scale, m, k)
                    entries.append({
                        "format": fmt,
                        "model": model,
                        "ne0": k,
                        "ne1": m,
                        "seed": seed,
                        "scale_bits": f"{int(np.float32(scale).view(np.uint32)):08x}",
                        "packed_len": int(packed.nbytes),
                        "tensor_bytes": len(tensor),
                        "n_tensor_infos": n_infos,
                        "values_sha256": hashlib.sha256(t.tobytes()).hexdigest(),
                        "tensor_sha256": hashlib.sha256(tensor).hexdigest(),
                        "kernel_config": section,
                    })
                    print(f"{fmt} {model} ne0={k} ne1={m}: {len(tensor)} bytes "
                          f"{entries[-1]['tensor_sha256']}", file=sys.stderr)
                    if fmt not in smallest or len(tensor) < smallest[fmt][0]:
                        smallest[fmt] = (len(tensor), f"{fmt.lower()}_{m}x{k}.bin", tensor)
                    (tmp / f"{n}.gguf").unlink()
                    n += 1

    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(entries, indent=1))
    for _, file_name, tensor in smallest.values():
        (out / file_name).write_bytes(tensor)
    print(f"wrote {len(entries)} cases to {out / 'manifest.json'} and "
          f"{', '.join(v[1] for v in smallest.values())}", file=sys.stderr)


if __name__ == "__main__":
    main()
