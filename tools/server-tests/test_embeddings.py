"""`POST /v1/embeddings` with the official `openai` client, against sentence-transformers.

The Rust test (crates/bitnet-cli/tests/serve_openai.rs, `embeddings_suite_on_all_minilm`) converts
all-MiniLM-L6-v2 to F32 GGUF with `bitnet convert`, starts `bitnet serve --embeddings` on it and
passes the reference file (testdata/embeddings/all-minilm-l6-v2.json, made by
tools/embeddings/make_refs.py) in BITNET_EMBED_REFS.
"""

import base64
import json
import math
import os
import struct
import threading

import openai
import pytest


@pytest.fixture(scope="session")
def refs():
    with open(os.environ["BITNET_EMBED_REFS"], encoding="utf-8") as f:
        data = json.load(f)
    assert len(data["sentences"]) >= 50
    return data


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_every_sentence_in_one_request(client, model_id, refs):
    sentences = refs["sentences"]
    # the client's default: base64 on the wire, decoded by the client
    res = client.embeddings.create(model=model_id, input=[s["text"] for s in sentences])
    assert res.object == "list" and res.model == model_id
    assert [d.index for d in res.data] == list(range(len(sentences)))
    assert res.usage.prompt_tokens == sum(len(s["ids"]) for s in sentences)
    assert res.usage.total_tokens == res.usage.prompt_tokens
    worst = min(cosine(d.embedding, s["mean"]) for d, s in zip(res.data, sentences))
    assert worst >= 0.9999, worst
    for d in res.data:
        assert len(d.embedding) == refs["dim"]
        assert abs(math.sqrt(sum(x * x for x in d.embedding)) - 1) < 1e-5


def test_float_base64_and_token_inputs_agree(client, model_id, http, refs):
    s = refs["sentences"][4]
    as_float = client.embeddings.create(model=model_id, input=s["text"], encoding_format="float")
    v = as_float.data[0].embedding
    assert cosine(v, s["mean"]) >= 0.9999
    raw = http.post("/v1/embeddings", json={"input": s["text"], "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack(f"<{len(packed) // 4}f", packed) == tuple(v)
    by_ids = client.embeddings.create(model=model_id, input=s["ids"], encoding_format="float")
    assert by_ids.data[0].embedding == v
    two = [refs["sentences"][1]["ids"], s["ids"]]
    many = client.embeddings.create(model=model_id, input=two, encoding_format="float")
    assert many.data[1].embedding == v


def test_dimensions_only_as_the_model_has_them(client, model_id, refs):
    ok = client.embeddings.create(model=model_id, input="hello", dimensions=refs["dim"])
    assert len(ok.data[0].embedding) == refs["dim"]
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=model_id, input="hello", dimensions=128)
    assert "dimensions" in str(e.value)


def test_bad_inputs_are_400(client, model_id, http):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=model_id, input="word " * 600)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=model_id, input=[])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=model_id, input=[[1, 2, 10 ** 7]])
    r = http.post("/v1/embeddings", json={"input": "x", "encoding_format": "int8"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "encoding_format"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    # this server does not generate text
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}])


def test_truncate_on_request(client, model_id, http, refs):
    cases = refs["truncated"]
    assert len(cases) >= 3
    # refused without the flag, also with "truncate": false
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=model_id, input=cases[0]["text"], extra_body={"truncate": False})
    assert e.value.code == "context_length_exceeded"
    # cut to the context with [CLS] and [SEP] kept: the tokenizer's truncation=True vectors
    res = client.embeddings.create(model=model_id, input=[c["text"] for c in cases] + ["Hello world"],
                                   encoding_format="float", extra_body={"truncate": True})
    assert len(res.data) == len(cases) + 1
    for d, c in zip(res.data, cases):
        assert cosine(d.embedding, c["mean"]) >= 0.9999
    short = [s for s in refs["sentences"] if s["text"] == "Hello world"][0]
    assert cosine(res.data[-1].embedding, short["mean"]) >= 0.9999
    assert res.usage.prompt_tokens == 512 * len(cases) + len(short["ids"])
    # token lists are cut the same way (the final [SEP] kept)
    too_long = cases[0]["ids"][:-1] + [1000] * 100 + [cases[0]["ids"][-1]]
    by_ids = client.embeddings.create(model=model_id, input=[too_long], encoding_format="float",
                                      extra_body={"truncate": True})
    assert by_ids.data[0].embedding == res.data[0].embedding
    r = http.post("/v1/embeddings", json={"input": "x", "truncate": "yes"})
    assert r.status_code == 400


def test_concurrent_requests_get_their_own_vectors(client, model_id, refs):
    sentences = refs["sentences"][:24]
    alone = [client.embeddings.create(model=model_id, input=s["text"], encoding_format="float")
             .data[0].embedding for s in sentences]
    got = [None] * len(sentences)

    def ask(i):
        got[i] = client.embeddings.create(model=model_id, input=sentences[i]["text"],
                                          encoding_format="float").data[0].embedding

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(sentences))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, got):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6
