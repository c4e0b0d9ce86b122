#!/usr/bin/env python3
"""Write the malformed-GGUF corpus and the type-resolution cases for crates/bitnet-gguf.

Usage: tools/make_malformed_gguf.py [REPO_ROOT]

Writes, byte by byte from the GGUF spec (no GGUF library: the files are deliberately broken),
- crates/bitnet-gguf/tests/malformed/*.gguf + MANIFEST.tsv ("file<TAB>expected GgufError
  variant<TAB>what is wrong"): every file must be refused with that variant, without a panic;
- crates/bitnet-gguf/tests/data/resolve/*.gguf + MANIFEST.tsv ("file<TAB>tensor<TAB>type
  name<TAB>why"): well-formed files whose colliding type ids (36, 39) must resolve to the given
  type (FORMATS.md §3: by architecture and exact tensor size).
Output is deterministic; rerunning rewrites identical files.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

# GGUF value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def gstr(s: bytes | str) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + val(vtype, value)


def val(vtype, value) -> bytes:
    if vtype == STRING:
        return gstr(value)
    if vtype == ARRAY:
        etype, items = value
        return struct.pack("<IQ", etype, len(items)) + b"".join(val(etype, x) for x in items)
    return struct.pack(SCALAR_FMT[vtype], value)


def tinfo(name, dims, type_id, offset) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) \
        + struct.pack("<IQ", type_id, offset)


def header(n_tensors, n_kv, version=3, magic=b"GGUF") -> bytes:
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def pad(b: bytes, align=32) -> bytes:
    return b + b"\0" * ((-len(b)) % align)


def gguf(kvs, tensors, data: bytes, align=32, version=3) -> bytes:
    """kvs: list of encoded kv bytes; tensors: list of encoded tensor infos."""
    head = header(len(tensors), len(kvs), version) + b"".join(kvs) + b"".join(tensors)
    return pad(head, align) + data


ARCH = kv("general.architecture", STRING, "llama")
BASE_KVS = [ARCH, kv("llama.block_count", U32, 1), kv("general.name", STRING, "malformed")]
F32_4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def base() -> bytes:
    """A valid file: 3 keys, two F32 tensors of 4 elements."""
    return gguf(BASE_KVS, [tinfo("a", [4], 0, 0), tinfo("b", [4], 0, 32)], pad(F32_4) + pad(F32_4))


def malformed_cases():
    ok = base()
    head_len = 24
    kv0_len = len(ARCH)
    infos_end = len(header(2, 3)) + sum(len(k) for k in BASE_KVS) + len(tinfo("a", [4], 0, 0)) * 2
    cases = [
        ("empty", b"", "Truncated", "zero bytes"),
        ("magic_only", b"GGUF", "Truncated", "file ends after the magic"),
        ("bad_magic", b"GGML" + ok[4:], "BadMagic", "magic GGML"),
        ("version_1", header(0, 0, version=1), "UnsupportedVersion", "GGUF v1 (u32 counts) is not read"),
        ("version_4", header(0, 0, version=4), "UnsupportedVersion", "version 4 does not exist"),
        ("version_0", header(0, 0, version=0), "UnsupportedVersion", "version 0"),
        ("big_endian_v3", b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "BigEndian", "big-endian header"),
        ("cut_in_version", ok[:6], "Truncated", "cut inside the version"),
        ("cut_in_tensor_count", ok[:12], "Truncated", "cut inside the tensor count"),
        ("cut_in_kv_count", ok[:20], "Truncated", "cut inside the key/value count"),
        ("cut_after_header", ok[:head_len], "CountTooLarge", "header only: 3 keys promised, 0 bytes left"),
        ("cut_in_first_key", ok[:head_len + 10], "CountTooLarge", "3 keys promised, 10 bytes left"),
        ("cut_in_key_name", header(0, 1) + ARCH[:20], "Truncated", "one key promised, cut inside its name"),
        ("cut_in_first_value", ok[:head_len + kv0_len - 3], "Truncated", "cut inside the first value"),
        ("cut_before_tensor_infos", ok[:head_len + sum(len(k) for k in BASE_KVS)], "CountTooLarge",
         "metadata complete, tensor infos missing"),
        ("cut_in_tensor_info", ok[:infos_end - 5], "Truncated", "cut inside the last tensor info"),
        ("cut_before_data", ok[:infos_end], "TensorPastEnd", "tensor infos complete, no data"),
        ("cut_in_data", ok[:len(ok) - 40], "TensorPastEnd", "second tensor's data cut"),
        ("huge_kv_count", header(0, 1 << 62) + ok[head_len:], "CountTooLarge", "2^62 keys claimed"),
        ("huge_tensor_count", header(1 << 62, 3) + ok[head_len:], "CountTooLarge", "2^62 tensors claimed"),
        ("key_len_overflow", header(0, 1) + struct.pack("<Q", 2**64 - 1) + b"abc" + b"\0" * 32, "Truncated",
         "key length u64::MAX"),
        ("key_len_past_end", header(0, 1) + struct.pack("<Q", 1000) + b"abc" + b"\0" * 32, "Truncated",
         "key length past the end"),
        ("non_utf8_key", gguf([gstr(b"gen\xffal") + struct.pack("<I", U8) + b"\x01"], [], b""),
         "InvalidUtf8", "key is not UTF-8"),
        ("unknown_value_type", gguf([gstr("k") + struct.pack("<I", 13) + b"\0" * 8], [], b""),
         "UnknownValueType", "value type 13"),
        ("unknown_value_type_huge", gguf([gstr("k") + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 8], [], b""),
         "UnknownValueType", "value type 2^32-1"),
        ("string_len_overflow", gguf([gstr("k") + struct.pack("<IQ", STRING, 2**64 - 4) + b"xyz"], [], b""),
         "Truncated", "string length near u64::MAX"),
        ("non_utf8_string_value", gguf([kv("k", STRING, b"\xc3\x28")], [], b""), "InvalidUtf8",
         "string value is not UTF-8"),
        ("array_unknown_elem_type", gguf([gstr("k") + struct.pack("<IIQ", ARRAY, 77, 1) + b"\0" * 8], [], b""),
         "UnknownValueType", "array element type 77"),
        ("array_huge_len", gguf([gstr("k") + struct.pack("<IIQ", ARRAY, U32, 2**64 - 1) + b"\0" * 8], [], b""),
         "CountTooLarge", "array of 2^64-1 UINT32"),
        ("array_strings_huge_len", gguf([gstr("k") + struct.pack("<IIQ", ARRAY, STRING, 1 << 40) + gstr("a")], [], b""),
         "CountTooLarge", "array of 2^40 strings in a few bytes"),
        ("array_strings_cut", (header(0, 1) + kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "bb", "ccc"])))[:-2],
         "Truncated", "string array cut in its last element"),
        ("array_string_non_utf8", gguf([kv("tokens", ARRAY, (STRING, ["ok", b"\xff\xfe"]))], [], b""),
         "InvalidUtf8", "second string of an array is not UTF-8"),
        ("nested_too_deep", gguf([gstr("k") + struct.pack("<I", ARRAY) + struct.pack("<IQ", ARRAY, 1) * 9
                                  + struct.pack("<IQ", U8, 0)], [], b""),
         "NestingTooDeep", "arrays nested 10 deep"),
        ("duplicate_key", gguf(BASE_KVS + [kv("llama.block_count", U32, 2)], [], b""), "DuplicateKey",
         "llama.block_count twice"),
        ("alignment_not_pow2", gguf(BASE_KVS + [kv("general.alignment", U32, 48)], [], b""),
         "BadAlignment", "alignment 48"),
        ("alignment_zero", gguf(BASE_KVS + [kv("general.alignment", U32, 0)], [], b""), "BadAlignment",
         "alignment 0"),
        ("alignment_wrong_type", gguf(BASE_KVS + [kv("general.alignment", U64, 32)], [], b""),
         "BadAlignment", "alignment stored as UINT64"),
        ("too_many_dims", gguf(BASE_KVS, [tinfo("a", [1, 1, 1, 1, 4], 0, 0)], pad(F32_4)), "TooManyDims",
         "5 dimensions"),
        ("dims_overflow", gguf(BASE_KVS, [tinfo("a", [1 << 40, 1 << 40], 0, 0)], pad(F32_4)),
         "ElementCountOverflow", "2^80 elements"),
        ("dim_above_i64", gguf(BASE_KVS, [tinfo("a", [1 << 63], 0, 0)], pad(F32_4)),
         "ElementCountOverflow", "one dim of 2^63"),
        ("non_utf8_tensor_name", gguf(BASE_KVS, [tinfo(b"w\xff", [4], 0, 0)], pad(F32_4)), "InvalidUtf8",
         "tensor name not UTF-8"),
        ("unknown_tensor_type", gguf(BASE_KVS, [tinfo("a", [4], 1000, 0)], pad(F32_4)),
         "UnknownTensorType", "type id 1000"),
        ("removed_tensor_type_4", gguf(BASE_KVS, [tinfo("a", [32], 4, 0)], pad(F32_4)),
         "UnknownTensorType", "Q4_2 (id 4) was removed from ggml"),
        ("removed_tensor_type_31", gguf(BASE_KVS, [tinfo("a", [32], 31, 0)], pad(F32_4)),
         "UnknownTensorType", "Q4_0_4_4 (id 31) was removed from gguf files"),
        ("duplicate_tensor", gguf(BASE_KVS, [tinfo("a", [4], 0, 0), tinfo("a", [4], 0, 32)],
                                  pad(F32_4) + pad(F32_4)), "DuplicateTensor", "tensor a twice"),
        ("misaligned_offset", gguf(BASE_KVS, [tinfo("a", [4], 0, 16)], pad(F32_4) * 2),
         "MisalignedTensor", "offset 16 with alignment 32"),
        ("offset_past_end", gguf(BASE_KVS, [tinfo("a", [4], 0, 1 << 40)], pad(F32_4)), "TensorPastEnd",
         "offset 2^40"),
        ("offset_overflow", gguf(BASE_KVS, [tinfo("a", [4], 0, 2**64 - 32)], pad(F32_4)), "TensorPastEnd",
         "offset near u64::MAX"),
        ("size_past_end", gguf(BASE_KVS, [tinfo("a", [1024], 0, 0)], pad(F32_4)), "TensorPastEnd",
         "4096 bytes claimed, 32 present"),
        ("overlapping_tensors", gguf(BASE_KVS, [tinfo("a", [16], 0, 0), tinfo("b", [4], 0, 32)],
                                     pad(F32_4 * 4)), "TensorOverlap", "a (64 bytes) overlaps b at 32"),
        ("same_offset_tensors", gguf(BASE_KVS, [tinfo("a", [4], 0, 0), tinfo("b", [4], 0, 0)], pad(F32_4)),
         "TensorOverlap", "a and b share offset 0"),
        ("q4k_row_not_block_multiple", gguf(BASE_KVS, [tinfo("a", [128, 2], 12, 0)], b"\0" * 288),
         "TensorSize", "Q4_K row of 128 (block 256)"),
        ("id39_no_arch_no_fit", gguf([kv("general.name", STRING, "x")], [tinfo("w", [256, 4], 39, 0)], b"\0" * 64),
         "AmbiguousType", "id 39, no architecture, 64 bytes fit neither TL2 nor MXFP4"),
        ("id36_both_fit", gguf([kv("general.architecture", STRING, "bitnet-b1.58")],
                               [tinfo("w", [512], 36, 0)], b"\0" * 160),
         "AmbiguousType", "512 elements: I2_S and BitNet32F16 are both 160 bytes"),
        ("id39_tl2_bad_shape", gguf([kv("general.architecture", STRING, "bitnet-b1.58")],
                                    [tinfo("w", [128, 4], 39, 0)], b"\0" * 96),
         "TensorSize", "TL2 (bitnet arch default) needs ne0 >= 256"),
        ("i2s_data_cut", gguf([kv("general.architecture", STRING, "bitnet-b1.58")],
                              [tinfo("w", [128, 4], 36, 0)], b"\0" * 64),
         "TensorPastEnd", "I2_S of 512 elements needs 160 bytes, 64 present"),
    ]
    return cases


def tl2_bytes(k, m):
    b = (k - 256) * m // 3 * 5 // 8 + 256 * m // 2 * 4 // 8
    b += (-b) % 32
    return b + 32


def resolve_cases():
    bitnet = kv("general.architecture", STRING, "bitnet-b1.58")
    llama = kv("general.architecture", STRING, "llama")
    n = 128 * 8
    i2s = n // 4 + 32             # 288
    bn32 = n // 32 * 10           # 320
    tl2 = tl2_bytes(512, 4)       # (256*4/3*5/8)+256*4/2*4/8 = 213 + 256 -> 469 -> 480 -> 512
    mx = 512 * 4 // 32 * 17       # 1088
    return [
        ("i2s_bitnet_arch", gguf([bitnet], [tinfo("w", [128, 8], 36, 0)], pad(b"\1" * i2s)),
         "w", "I2_S", "id 36, bitnet-b1.58, n/4+32 bytes"),
        ("bn32f16_exact", gguf([bitnet], [tinfo("w", [128, 8], 36, 0)], pad(b"\1" * bn32)),
         "w", "I2_S_BN32F16", "id 36, exactly 10 bytes per 32 elements"),
        ("i2s_llama_arch", gguf([llama], [tinfo("w", [128, 8], 36, 0)], pad(b"\1" * i2s)),
         "w", "I2_S", "id 36 means nothing in mainline: bitnet.cpp's I2_S"),
        ("tl2_bitnet_arch", gguf([bitnet], [tinfo("w", [512, 4], 39, 0)], pad(b"\1" * tl2)),
         "w", "TL2", "id 39, bitnet arch, TL2 size"),
        ("mxfp4_llama_arch", gguf([llama], [tinfo("w", [512, 4], 39, 0)], pad(b"\1" * mx)),
         "w", "MXFP4", "id 39, llama arch, MXFP4 size"),
        ("mxfp4_by_size_in_bitnet_arch", gguf([bitnet], [tinfo("w", [512, 4], 39, 0)], pad(b"\1" * mx)),
         "w", "MXFP4", "id 39, bitnet arch, but only MXFP4's size fits"),
        ("tl2_by_size_in_llama_arch", gguf([llama], [tinfo("w", [512, 4], 39, 0)], pad(b"\1" * tl2)),
         "w", "TL2", "id 39, llama arch, but only TL2's size fits (bitnet.cpp llama-arch TL2 files)"),
        ("tl2_by_size_no_arch", gguf([], [tinfo("w", [512, 4], 39, 0)], pad(b"\1" * tl2)),
         "w", "TL2", "id 39, no architecture, exact TL2 size"),
    ]


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    crate = root / "crates/bitnet-gguf/tests"
    mdir = crate / "malformed"
    rdir = crate / "data/resolve"
    for d in (mdir, rdir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.gguf"):
            old.unlink()
    lines = ["# file\texpected GgufError variant\twhat is wrong (made by tools/make_malformed_gguf.py)"]
    for name, data, variant, why in malformed_cases():
        (mdir / f"{name}.gguf").write_bytes(data)
        lines.append(f"{name}.gguf\t{variant}\t{why}")
    (mdir / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    lines = ["# file\ttensor\texpected type\twhy (made by tools/make_malformed_gguf.py)"]
    for name, data, tensor, ty, why in resolve_cases():
        (rdir / f"{name}.gguf").write_bytes(data)
        lines.append(f"{name}.gguf\t{tensor}\t{ty}\t{why}")
    (rdir / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(malformed_cases())} malformed files in {mdir}, {len(resolve_cases())} resolution cases in {rdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
