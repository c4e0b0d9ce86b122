"""bitnet.Embedder on all-MiniLM-L6-v2 converted to F32 GGUF by the `bitnet` CLI, against
sentence-transformers' vectors of 54 sentences (testdata/embeddings/all-minilm-l6-v2.json, made
by tools/embeddings/make_refs.py): token ids identical, cosine >= 0.9999, the same vectors as
`bitnet embed`; truncation on request against the reference's truncated texts; bad input raising
clear exceptions."""

import json
from pathlib import Path

import numpy as np
import pytest

import bitnet
from conftest import REPO, cache_dir, required, run_cli

REFS = REPO / "testdata" / "embeddings" / "all-minilm-l6-v2.json"


@pytest.fixture(scope="session")
def refs():
    data = json.loads(required(REFS, "it is a fixture committed under testdata/").read_text())
    assert len(data["sentences"]) >= 50 and len(data["truncated"]) >= 3
    return data


@pytest.fixture(scope="session")
def minilm_gguf(cli, tmp_path_factory) -> Path:
    checkpoint = cache_dir() / "models" / "all-MiniLM-L6-v2"
    required(checkpoint / "model.safetensors", "run scripts/fetch-test-data.sh")
    out = tmp_path_factory.mktemp("minilm") / "all-minilm-l6-v2-f32.gguf"
    run_cli(cli, "convert", str(checkpoint), "-o", str(out), "--type", "f32", "--no-progress")
    return out


@pytest.fixture(scope="session")
def minilm(minilm_gguf) -> bitnet.Embedder:
    return bitnet.Embedder(minilm_gguf)


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_vectors_match_sentence_transformers(minilm, refs):
    assert minilm.dim == refs["dim"] == 384 and minilm.n_ctx == 512
    assert minilm.pooling == "mean"
    sentences = refs["sentences"]
    vectors = minilm.embed([s["text"] for s in sentences])
    assert vectors.dtype == np.float32 and vectors.shape == (len(sentences), 384)
    worst = cosines(vectors, [s["mean"] for s in sentences]).min()
    assert worst >= 0.9999, worst
    assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < 1e-5
    for s in sentences:
        assert minilm.tokenize(s["text"]) == s["ids"]
    # one string: one vector, equal to its row in the batch
    one = minilm.embed(sentences[4]["text"])
    assert one.shape == (384,)
    assert np.abs(one - vectors[4]).max() < 1e-6


def test_equal_to_the_cli(minilm, minilm_gguf, cli, refs):
    texts = [s["text"] for s in refs["sentences"][:6]]
    out = json.loads(run_cli(cli, "embed", "-m", str(minilm_gguf), "--json", "--", *texts))
    ours = minilm.embed(texts)
    theirs = np.array([d["embedding"] for d in out["data"]], dtype=np.float32)
    assert np.array_equal(ours, theirs)


def test_pooling_and_normalize_options(minilm_gguf, refs):
    cls = bitnet.Embedder(minilm_gguf, pooling="cls", threads=1)
    s = refs["sentences"][9]
    assert cosines(cls.embed(s["text"]), s["cls"]) >= 0.9999
    raw = bitnet.Embedder(minilm_gguf, normalize=False)
    v = raw.embed(s["text"])
    assert abs(np.linalg.norm(v) - 1) > 1e-3
    assert cosines(v, s["mean"]) >= 0.9999


def test_truncate_on_request(minilm, refs):
    cases = refs["truncated"]
    with pytest.raises(ValueError, match="truncate=True"):
        minilm.embed(cases[0]["text"])
    vectors = minilm.embed([c["text"] for c in cases], truncate=True)
    worst = cosines(vectors, [c["mean"] for c in cases]).min()
    assert worst >= 0.9999, worst
    for c in cases:
        assert minilm.tokenize(c["text"], truncate=True) == c["ids"]


def test_bad_input(minilm, minilm_gguf, tmp_path):
    with pytest.raises(FileNotFoundError):
        bitnet.Embedder(tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="pooling"):
        bitnet.Embedder(minilm_gguf, pooling="sum")
    with pytest.raises(ValueError, match="threads"):
        bitnet.Embedder(minilm_gguf, threads=0)
    with pytest.raises(ValueError, match="not a reranker"):
        minilm.rerank("query", ["document"])
    assert minilm.embed([]).shape == (0, 384)
    # a decoder is not an encoder
    shipped = REPO / "models" / "bitnet-b158-kjv-29m.gguf"
    with pytest.raises(bitnet.BitnetError, match="not an encoder"):
        bitnet.Embedder(shipped)
