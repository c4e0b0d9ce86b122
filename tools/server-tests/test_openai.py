"""The OpenAI API as the official `openai` client sees it: chat and completions, streamed and
not, stop sequences, seed determinism, usage counts, logprobs, and the error shapes.

Run against `bitnet serve` on a real chat model (SmolLM2-135M-Instruct) started with an API
key; see conftest.py."""

import json
import math
import os

import httpx
import openai
import pytest

from sse import read_events

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def same_counts(a, b):
    """Two usages with the same token counts (the second of two equal requests may take its
    prompt from the prompt cache, so `prompt_tokens_details.cached_tokens` may differ)."""
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def assert_error_shape(body, status_type=None):
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    if status_type:
        assert err["type"] == status_type, err


def test_health_and_models(http, model_id):
    assert http.get("/health").json() == {"status": "ok"}
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    assert models["data"][0]["object"] == "model"
    # the id is the served file's stem (serve_openai.rs serves SmolLM2's Q4_1 file, no --alias)
    assert [m["id"] for m in models["data"]] == [model_id]
    assert model_id == os.environ.get("BITNET_SERVER_MODEL_ID", "SmolLM2-135M-Instruct.Q4_1")


def test_chat_answers_a_question(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_tokens=12)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == model_id
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert "Paris" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert 0 < u.completion_tokens <= 12


def test_chat_stream_matches_non_streamed(client, model_id):
    args = dict(model=model_id, messages=QUESTION, temperature=0, max_tokens=10)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(
        **args, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in content_chunks]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert all(f is None for f in finishes[:-1])
    # the usage chunk comes last, with no choices
    assert chunks[-1].choices == []
    assert same_counts(chunks[-1].usage, whole.usage)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(client, model_id):
    chunks = list(client.chat.completions.create(
        model=model_id, messages=QUESTION, temperature=0, max_tokens=3, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completions_stream_matches_non_streamed(client, model_id, http):
    prompt = "The quick brown fox"
    args = dict(model=model_id, prompt=prompt, temperature=0, max_tokens=8)
    whole = client.completions.create(**args)
    assert whole.object == "text_completion"
    assert whole.id.startswith("cmpl-")
    chunks = list(client.completions.create(
        **args, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert same_counts(chunks[-1].usage, whole.usage)
    # prompt tokens are what /tokenize counts with the model's special tokens
    ids = http.post("/tokenize", json={"content": prompt, "add_special": True}).json()["tokens"]
    assert whole.usage.prompt_tokens == len(ids)


def test_usage_counts_generated_tokens(client, model_id):
    r = client.completions.create(model=model_id, prompt="One, two, three, four,",
                                  temperature=0, max_tokens=7, logprobs=1)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 7
    assert len(r.choices[0].logprobs.tokens) == 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + 7


def test_max_completion_tokens(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_completion_tokens=2)
    assert r.usage.completion_tokens <= 2


def test_stop_sequences(client, model_id):
    base = client.completions.create(model=model_id, prompt="One, two, three, four,",
                                     temperature=0, max_tokens=16).choices[0].text
    assert len(base) > 10, base
    stop = base[6:9]
    cut = base[:base.find(stop)]
    for stream in (False, True):
        if stream:
            chunks = list(client.completions.create(
                model=model_id, prompt="One, two, three, four,", temperature=0,
                max_tokens=16, stop=[stop, "@@never@@"], stream=True))
            text = "".join(c.choices[0].text for c in chunks)
            finish = chunks[-1].choices[0].finish_reason
        else:
            r = client.completions.create(model=model_id, prompt="One, two, three, four,",
                                          temperature=0, max_tokens=16, stop=stop)
            text, finish = r.choices[0].text, r.choices[0].finish_reason
        assert text == cut, (stop, base)
        assert finish == "stop"


def test_chat_stop_sequence(client, model_id):
    base = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                          max_tokens=10).choices[0].message.content
    assert len(base) >= 3, base
    stop = base[1:3]
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_tokens=10, stop=stop)
    assert r.choices[0].message.content == base[:base.find(stop)]
    assert r.choices[0].finish_reason == "stop"


def sample(client, model_id, seed):
    return client.completions.create(model=model_id, prompt="Once upon a time", temperature=1.0,
                                     top_p=1.0, max_tokens=12, seed=seed).choices[0].text


def test_seed_determinism(client, model_id):
    first = sample(client, model_id, 1234)
    assert sample(client, model_id, 1234) == first
    others = {sample(client, model_id, s) for s in (1, 2, 3)}
    assert others != {first}, "different seeds all gave the same sample"


def test_chat_logprobs(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_tokens=6, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content, "no logprobs"
    assert "".join(t.token for t in content).startswith(r.choices[0].message.content.strip()[:3])
    for t in content:
        assert t.logprob <= 0
        assert t.bytes == list(t.token.encode("utf-8")) or "\ufffd" in t.token
        assert len(t.top_logprobs) == 3
        lps = [a.logprob for a in t.top_logprobs]
        assert lps == sorted(lps, reverse=True)
        assert sum(math.exp(x) for x in lps) <= 1.0 + 1e-4
        # greedy: the chosen token is the most likely one
        assert t.token == t.top_logprobs[0].token
        assert math.isclose(t.logprob, t.top_logprobs[0].logprob, abs_tol=1e-5)


def test_chat_logprobs_streamed(client, model_id):
    chunks = list(client.chat.completions.create(
        model=model_id, messages=QUESTION, temperature=0, max_tokens=5, logprobs=True,
        top_logprobs=1, stream=True))
    streamed = [t.token for c in chunks if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content]
    whole = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                           max_tokens=5, logprobs=True, top_logprobs=1)
    assert streamed == [t.token for t in whole.choices[0].logprobs.content]


def test_legacy_logprobs(client, model_id):
    r = client.completions.create(model=model_id, prompt="The sky is", temperature=0,
                                  max_tokens=6, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(lp.tokens))]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0
        assert len(top) <= 2
        assert max(top.values()) == pytest.approx(logprob, abs=1e-5)
        assert token in top


def test_logit_bias_bans_the_greedy_token(client, model_id, http):
    args = dict(model=model_id, prompt="The capital of France is", temperature=0, max_tokens=1,
                logprobs=1)
    first = client.completions.create(**args).choices[0]
    banned = http.post("/tokenize", json={"content": first.logprobs.tokens[0]}).json()["tokens"]
    assert len(banned) == 1
    again = client.completions.create(**args, logit_bias={str(banned[0]): -100}).choices[0]
    assert again.logprobs.tokens[0] != first.logprobs.tokens[0]


def test_echo(client, model_id):
    r = client.completions.create(model=model_id, prompt="Hello there", temperature=0,
                                  max_tokens=3, echo=True)
    assert r.choices[0].text.startswith("Hello there")


def test_tokenize_detokenize_roundtrip(http):
    text = "Hello world, ünïcödé and 123!"
    ids = http.post("/tokenize", json={"content": text}).json()["tokens"]
    assert all(isinstance(i, int) for i in ids)
    assert http.post("/detokenize", json={"tokens": ids}).json() == {"content": text}
    pieces = http.post("/tokenize", json={"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == ids


def test_metrics(http, client, model_id):
    client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0, max_tokens=1)
    text = http.get("/metrics").text
    assert 'bitnet_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'bitnet_request_duration_seconds_count{endpoint="/v1/chat/completions"}' in text
    assert 'bitnet_time_to_first_token_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"}' in text
    assert "bitnet_queue_depth " in text
    assert "bitnet_active_slots " in text
    assert "bitnet_completion_tokens_total " in text


# ---- errors ------------------------------------------------------------------------------

def test_bad_json(http):
    r = http.post("/v1/chat/completions", content=b'{"model": "x", "messages": [',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert_error_shape(r.json(), "invalid_request_error")


def test_wrong_types(http, model_id):
    for field, value in [("max_tokens", "ten"), ("temperature", "hot"), ("messages", "hi"),
                         ("stream", 3), ("stop", 5)]:
        body = {"model": model_id, "messages": [{"role": "user", "content": "hi"}], field: value}
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 400, (field, r.text)
        assert_error_shape(r.json(), "invalid_request_error")
        assert r.json()["error"]["param"] == field


def test_out_of_range_values(client, model_id):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=QUESTION, temperature=5)
    assert e.value.body["param"] == "temperature"


def test_n_other_than_one_is_refused(client, model_id):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=QUESTION, n=2, max_tokens=1)
    assert e.value.body["param"] == "n"
    assert "`n` must be 1" in e.value.body["message"]


def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-17-ultra", messages=QUESTION, max_tokens=1)
    assert e.value.status_code == 404
    assert e.value.body["code"] == "model_not_found"
    assert "gpt-17-ultra" in e.value.body["message"]


def test_too_long_prompt(client, model_id):
    import os
    ctx = int(os.environ.get("BITNET_SERVER_CTX", "0"))
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_id, prompt="hello " * 3000, max_tokens=1)
    message = e.value.body["message"]
    assert "tokens" in message
    if ctx:
        assert f"context holds {ctx}" in message, message
    # the chat endpoint too
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, max_tokens=1,
                                       messages=[{"role": "user", "content": "hi " * 3000}])


def test_missing_and_wrong_api_key(base_url, api_key, model_id):
    if not api_key:
        pytest.fail("the server must be started with --api-key for this suite")
    for key in ("", "wrong-key"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = httpx.post(f"{base_url}/v1/chat/completions", headers=headers,
                       json={"model": model_id, "messages": QUESTION, "max_tokens": 1})
        assert r.status_code == 401
        assert_error_shape(r.json(), "authentication_error")
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    # the page and health stay open
    assert httpx.get(f"{base_url}/health").status_code == 200
    assert httpx.get(f"{base_url}/").status_code == 200


def test_body_too_large(http):
    body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "a" * (2 << 20)}]})
    r = http.post("/v1/chat/completions", content=body,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert_error_shape(r.json())


def test_unknown_route_and_method(http):
    r = http.get("/v1/nothing-here")
    assert r.status_code == 404
    assert_error_shape(r.json())
    r = http.get("/v1/chat/completions")
    assert r.status_code == 405
    assert_error_shape(r.json())


def test_raw_stream_is_well_formed(http, model_id):
    body = {"model": model_id, "messages": QUESTION, "max_tokens": 4, "stream": True,
            "temperature": 0}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(read_events(r.iter_lines()))
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1]["choices"][0]["finish_reason"] is not None


def metric(http, name):
    import re
    m = re.search(rf"^{name} (\d+)$", http.get("/metrics").text, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def test_full_queue_answers_429(http, base_url, auth_headers, model_id):
    """With every slot busy and the queue full (the suite's server runs --parallel 2
    --queue 2), one more request gets 429; the clients that leave free everything."""
    import os
    import socket
    import time
    slots = int(os.environ.get("BITNET_SERVER_SLOTS", "2"))
    queue = int(os.environ.get("BITNET_SERVER_QUEUE", "2"))
    host, port = base_url.removeprefix("http://").split(":")
    body = json.dumps({"model": model_id, "prompt": "Tell me a story.", "max_tokens": 400,
                       "ignore_eos": True, "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" +
            "".join(f"{k}: {v}\r\n" for k, v in auth_headers.items()) + "\r\n").encode()
    socks = []

    def fill(count, active, queued):
        for _ in range(count):
            s = socket.create_connection((host, int(port)), timeout=30)
            s.sendall(head + body)
            socks.append(s)
        deadline = time.monotonic() + 30
        while (metric(http, "bitnet_active_slots"), metric(http, "bitnet_queue_depth")) != (active, queued):
            assert time.monotonic() < deadline, f"never reached {active} active, {queued} queued"
            time.sleep(0.05)

    try:
        fill(slots, slots, 0)   # every slot busy,
        fill(queue, slots, queue)  # then the queue full
        r = http.post("/v1/completions", json={"model": model_id, "prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 429, r.text
        assert_error_shape(r.json(), "rate_limit_error")
        assert r.json()["error"]["code"] == "queue_full"
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 30
    while metric(http, "bitnet_active_slots") or metric(http, "bitnet_queue_depth"):
        assert time.monotonic() < deadline, "the departed clients still hold slots"
        time.sleep(0.05)
