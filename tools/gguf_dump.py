#!/usr/bin/env python3
"""Dump a GGUF file with PyPI `gguf` (GGUFReader) to JSON: the reference the Rust reader
(`bitnet-gguf`) and `bitnet inspect --json` are tested against.

Usage:
  tools/gguf_dump.py FILE [-o OUT.json]
  tools/gguf_dump.py --all-into DIR FILE...      one DIR/<file stem>.json per FILE
  tools/gguf_dump.py --quant-sizes               gguf-py's GGML_QUANT_SIZES table

JSON schema (every value exactly as gguf-py reads it):
  {"file": name, "file_size": n, "version": v, "alignment": a, "data_offset": off,
   "metadata": [{"key": k, "types": ["ARRAY", "STRING"], "value": ...}, ...],   # file order
   "tensors":  [{"name", "type_id", "type", "shape" (ne0 first), "n_elements",
                 "n_bytes", "offset" (relative to data_offset), "sha256"}, ...]  # file order
   "tensor_error": null | "why gguf-py could not build its tensor list"}
`types` is gguf-py's ReaderField.types (outer type, then the element type of the first element
at each nesting level); `value` is ReaderField.contents() (gguf-py flattens nested arrays).
Non-finite floats are written as the strings "nan", "inf", "-inf".

gguf-py cannot build tensors of types it does not know (bitnet.cpp's I2_S, id 36): then the
metadata is still dumped, the tensors are dumped from gguf-py's own parsed tensor-info fields
(name, dims, type id, offset); n_bytes and sha256 are given for the types gguf-py knows and
null for the others, and "tensor_error" says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType


class MetadataOnlyReader(GGUFReader):
    """GGUFReader that keeps gguf-py's parsed tensor-info fields instead of building tensors
    (used when a tensor type is unknown to gguf-py)."""

    def _build_tensors(self, start_offs, fields):  # noqa: D401 (gguf-py internal hook)
        self.tensor_fields = fields
        self.tensors = []


def jsonable(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return jsonable(v.item())
    return v


def dump_metadata(reader):
    out = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        out.append(
            {
                "key": key,
                "types": [t.name for t in field.types],
                "value": jsonable(field.contents()),
            }
        )
    return out


def dump(path: Path) -> dict:
    tensor_error = None
    try:
        reader = GGUFReader(path)
        tensors = []
        for t in reader.tensors:
            data = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
            tensors.append(
                {
                    "name": t.name,
                    "type_id": int(t.tensor_type),
                    "type": t.tensor_type.name,
                    "shape": [int(d) for d in t.shape],
                    "n_elements": int(t.n_elements),
                    "n_bytes": int(t.n_bytes),
                    "offset": int(t.data_offset) - int(reader.data_offset),
                    "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
                }
            )
    except ValueError as e:
        tensor_error = f"{type(e).__name__}: {e}"
        reader = MetadataOnlyReader(path)
        tensors = []
        for field in reader.tensor_fields:
            _nl, _name, _nd, dims, raw_type, offset = field.parts
            tid = int(raw_type[0])
            n_elements = int(np.prod(dims.astype(object))) if len(dims) else 1
            tname = n_bytes = sha = None
            try:
                qtype = GGMLQuantizationType(tid)
            except ValueError:
                qtype = None
            if qtype is not None:
                # A type gguf-py knows: its size rule and the bytes where the table puts them.
                tname = qtype.name
                block, size = GGML_QUANT_SIZES[qtype]
                n_bytes = n_elements * size // block
                start = int(reader.data_offset) + int(offset[0])
                sha = hashlib.sha256(reader.data[start:start + n_bytes].tobytes()).hexdigest()
            tensors.append(
                {
                    "name": field.name,
                    "type_id": tid,
                    "type": tname,
                    "shape": [int(d) for d in dims],
                    "n_elements": n_elements,
                    "n_bytes": n_bytes,
                    "offset": int(offset[0]),
                    "sha256": sha,
                }
            )
    return {
        "file": path.name,
        "file_size": os.path.getsize(path),
        "version": int(reader.fields["GGUF.version"].parts[0][0]),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": dump_metadata(reader),
        "tensors": tensors,
        "tensor_error": tensor_error,
    }


def quant_sizes() -> dict:
    return {
        t.name: {"id": int(t), "block": bs, "bytes": ts}
        for t, (bs, ts) in GGML_QUANT_SIZES.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--all-into", type=Path, metavar="DIR")
    ap.add_argument("--quant-sizes", action="store_true")
    args = ap.parse_args()

    if args.quant_sizes:
        text = json.dumps(quant_sizes(), indent=1)
        if args.output:
            args.output.write_text(text + "\n")
        else:
            print(text)
        return 0
    if args.all_into:
        args.all_into.mkdir(parents=True, exist_ok=True)
        for f in args.files:
            out = args.all_into / (f.stem + ".json")
            out.write_text(json.dumps(dump(f)))
            print(f"{f} -> {out}", file=sys.stderr)
        return 0
    if len(args.files) != 1:
        ap.error("give one FILE (or --all-into DIR FILE...)")
    text = json.dumps(dump(args.files[0]), indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
