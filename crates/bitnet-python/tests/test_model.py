"""Loading, info, tokenizer, logits and perplexity from Python: logits bit-identical to the Rust
engine's own (dumped by the bitnet-model test `dump_i2s_prefill_logits_for_python`), tokens and
perplexity equal to the CLI's, and bad paths and arguments raising clear exceptions."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import bitnet
from conftest import ALICE, REPO, SHIPPED, TINY_B158, run_cli


def test_the_package_is_the_installed_wheel():
    assert REPO not in Path(bitnet.__file__).resolve().parents, bitnet.__file__


def test_default_model_is_the_shipped_one(shipped):
    info = shipped.info
    path = Path(info["path"])
    assert path.name == SHIPPED.name and path.read_bytes() == SHIPPED.read_bytes()
    assert info["architecture"] == "bitnet-b1.58"
    assert info["head"] == "f16" and info["threads"] >= 1
    assert 20e6 < info["parameters"] < 40e6
    assert info["file_bytes"] == SHIPPED.stat().st_size


def test_logits_equal_the_rust_engines_bits(tiny_b158):
    dump = os.environ.get("BITNET_LOGITS_DUMP")
    if not dump:
        pytest.fail("BITNET_LOGITS_DUMP is not set: run the suite through scripts/test-python.sh")
    sequences = json.loads(
        (REPO / "testdata/oracle/tiny-b158/reference/sequences.json").read_text()
    )["sequences"]
    vocab = tiny_b158.info["n_vocab"]
    for i, seq in enumerate(sequences):
        ours = tiny_b158.logits(seq["ids"])
        assert ours.dtype == np.float32 and ours.shape == (len(seq["ids"]), vocab)
        rust = np.fromfile(Path(dump) / f"seq{i}.f32", dtype="<f4").reshape(ours.shape)
        assert np.array_equal(ours.view(np.uint32), rust.view(np.uint32)), f"sequence {i}"


def test_logits_argmax_is_the_greedy_token(shipped):
    prompt = shipped.tokenize("In the beginning")
    rows = shipped.logits(prompt)
    generated = shipped.stream("In the beginning", max_tokens=1)
    list(generated)
    assert generated.tokens == [int(np.argmax(rows[-1]))]


def test_tokenize_equals_bitnet_tokenize(smollm2, smollm2_path, cli):
    text = "Hello <|im_start|>world, naïve café! 12345"
    for flags, kwargs in [((), {}), (("--no-parse-special",), {"parse_special": False})]:
        out = run_cli(cli, "tokenize", "-m", str(smollm2_path), "--ids-only", *flags, text)
        ids = [int(t) for t in out.split()]
        assert smollm2.tokenize(text, **kwargs) == ids
    plain = smollm2.tokenize(text, add_special=False, parse_special=False)
    assert smollm2.detokenize(plain) == text
    special = smollm2.tokenize(text, add_special=False)
    assert smollm2.detokenize(special, show_special=True) == text
    assert "<|im_start|>" not in smollm2.detokenize(special)


def test_perplexity_equals_bitnet_perplexity(shipped, cli, tmp_path):
    text = ALICE.read_text(encoding="utf-8")[:20000]
    path = tmp_path / "alice.txt"
    path.write_text(text, encoding="utf-8")
    out = run_cli(cli, "perplexity", "-m", str(SHIPPED), "-f", str(path), "-c", "128", "--chunks", "4")
    final = [l for l in out.splitlines() if l.startswith("Final estimate")][0]
    result = shipped.perplexity(text, ctx=128, chunks=4)
    assert final == f"Final estimate: PPL = {result['ppl']:.4f} +/- {result['stderr']:.5f}"
    assert len(result["chunk_ppl"]) == 4 and result["tokens_scored"] == 4 * 63


def test_missing_file_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError, match="model file not found: .*nope.gguf"):
        bitnet.Model(missing)


def test_a_file_that_is_not_gguf_raises_the_engines_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTGGUF" + bytes(64))
    with pytest.raises(bitnet.BitnetError, match="not a GGUF file"):
        bitnet.Model(bad)


def test_an_isa_choice_the_kernels_cannot_honour_is_refused(monkeypatch):
    monkeypatch.setenv("BITNET_ISA", "avx1024")
    with pytest.raises(bitnet.BitnetError, match="BITNET_ISA=.avx1024. is not one of"):
        bitnet.Model(str(SHIPPED))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="GPU is not built"):
        bitnet.Model(device="cuda")
    with pytest.raises(ValueError, match="head must be 'f16', 'q8_0' or 'q6_k'"):
        bitnet.Model(head="q4")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        bitnet.Model(threads=0)
    assert bitnet.Model(device="cpu", head="q8_0", threads=1).info["head"] == "q8_0"
    assert bitnet.Model(device="cpu", head="q6_k", threads=1).info["head"] == "q6_k"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_tokens": -1}, "max_tokens must be >= 0"),
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_p": 0.0}, "top_p must be in"),
        ({"top_k": -3}, "top_k must be >= 0"),
        ({"min_p": 2.0}, "min_p must be in"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"stop": [""]}, "stop strings must not be empty"),
    ],
)
def test_bad_generation_arguments(shipped, kwargs, message):
    with pytest.raises(ValueError, match=message):
        shipped.generate("In the beginning", **kwargs)
    with pytest.raises(ValueError, match=message):
        shipped.stream("In the beginning", **kwargs)


def test_bad_inputs(shipped, tiny_b158):
    with pytest.raises(ValueError, match="the context holds"):
        shipped.generate("In the beginning " * 400, max_tokens=10_000)
    with pytest.raises(ValueError, match="tokens is empty"):
        shipped.logits([])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny_b158.logits([1, 10**6])
    with pytest.raises(ValueError, match="not a valid id"):
        shipped.detokenize([-1])
    with pytest.raises(ValueError, match="out of range"):
        shipped.detokenize([10**9])
    with pytest.raises(ValueError, match="at least 2·n_ctx"):
        shipped.perplexity("too short", ctx=128)
    with pytest.raises(ValueError, match="messages is empty"):
        shipped.chat([])
    with pytest.raises(ValueError, match='has no "content"'):
        shipped.chat([{"role": "user"}])
    with pytest.raises(ValueError, match="unknown chat template"):
        shipped.chat([{"role": "user", "content": "hi"}], template="no-such-template")
    with pytest.raises(TypeError):
        shipped.generate(42)
