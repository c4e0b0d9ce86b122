"""`POST /v1/rerank` (and `/rerank`) on a reranker, against transformers' scores.

The Rust test (crates/bitnet-cli/tests/serve_openai.rs, `rerank_suite_on_tiny_reranker`) converts
the tiny random-weight BERT cross-encoder (testdata/embeddings/tiny-bert-reranker, made by
tools/embeddings/make_tiny_reranker.py) to F32 GGUF with `bitnet convert`, starts
`bitnet serve --embeddings` on it and passes its reference.json in BITNET_RERANK_REFS.
"""

import json
import os
import threading

import openai
import pytest


@pytest.fixture(scope="session")
def pairs():
    with open(os.environ["BITNET_RERANK_REFS"], encoding="utf-8") as f:
        data = json.load(f)
    by_query = {}
    for p in data["pairs"]:
        by_query.setdefault(p["query"], []).append(p)
    assert len(by_query) >= 5
    return by_query


def test_scores_match_transformers(http, model_id, pairs):
    for query, expected in pairs.items():
        documents = [p["document"] for p in expected]
        r = http.post("/v1/rerank", json={"model": model_id, "query": query, "documents": documents})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list" and body["model"] == model_id
        results = body["results"]
        assert sorted(x["index"] for x in results) == list(range(len(documents)))
        scores = [x["relevance_score"] for x in results]
        assert scores == sorted(scores, reverse=True)
        for x in results:
            assert abs(x["relevance_score"] - expected[x["index"]]["score"]) <= 1e-4
            assert "document" not in x
        assert body["usage"]["prompt_tokens"] == sum(len(p["ids"]) for p in expected)


def test_top_n_return_documents_and_alias(http, pairs):
    query, expected = next(iter(pairs.items()))
    documents = [p["document"] for p in expected]
    best = max(range(len(expected)), key=lambda i: expected[i]["score"])
    r = http.post("/rerank", json={"query": query, "documents": documents, "top_n": 2,
                                    "return_documents": True}).json()
    assert len(r["results"]) == 2
    assert r["results"][0]["index"] == best
    assert r["results"][0]["document"] == {"text": documents[best]}


def test_concurrent_requests_get_their_own_scores(http, pairs):
    queries = list(pairs.items())
    got = [None] * len(queries)

    def ask(i):
        query, expected = queries[i]
        got[i] = http.post("/v1/rerank", json={
            "query": query, "documents": [p["document"] for p in expected]}).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (query, expected), body in zip(queries, got):
        for x in body["results"]:
            assert abs(x["relevance_score"] - expected[x["index"]]["score"]) <= 1e-4


def test_bad_requests_are_400(http, client, model_id):
    r = http.post("/v1/rerank", json={"query": "q", "documents": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"
    r = http.post("/v1/rerank", json={"query": "q", "documents": ["word " * 600]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    r = http.post("/v1/rerank", json={"query": "q", "documents": ["d"], "top_n": 0})
    assert r.status_code == 400
    r = http.post("/v1/rerank", json={"documents": ["d"]})
    assert r.status_code == 400
    # a reranker gives scores, not embeddings
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=model_id, input="hello")
    assert "/v1/rerank" in str(e.value)
