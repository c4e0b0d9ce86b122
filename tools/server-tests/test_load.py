"""Load on loopback: 16 concurrent streaming clients x 20 requests each, every stream
well-formed and complete; and clients that drop mid-stream free their slots.

Environment (besides conftest.py's): BITNET_SERVER_SLOTS, the server's --parallel."""

import concurrent.futures as cf
import os
import re
import socket
import time

import pytest

from sse import read_events

CLIENTS = 16
REQUESTS_PER_CLIENT = 20


def check_stream(events, kind):
    """Checks one stream's chunks; returns (text, usage)."""
    assert events, "no events"
    ids = {e["id"] for e in events}
    assert len(ids) == 1, ids
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    assert all(e["object"] == obj for e in events)
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == []
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens",
                          "prompt_tokens_details"}
    assert 0 <= usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]
    body = events[:-1]
    finishes = [e["choices"][0]["finish_reason"] for e in body]
    assert finishes[-1] in ("stop", "length"), finishes
    assert all(f is None for f in finishes[:-1]), finishes
    if kind == "chat":
        assert body[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in body)
    else:
        text = "".join(e["choices"][0]["text"] for e in body)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= 8
    return text, usage


def one_client(http, model_id, client_no):
    for i in range(REQUESTS_PER_CLIENT):
        kind = "chat" if (client_no + i) % 2 else "completion"
        common = {"model": model_id, "max_tokens": 8, "stream": True, "seed": client_no * 100 + i,
                  "stream_options": {"include_usage": True}}
        if kind == "chat":
            path = "/v1/chat/completions"
            body = {**common, "messages": [{"role": "user", "content": f"Client {client_no} says {i}"}]}
        else:
            path = "/v1/completions"
            body = {**common, "prompt": f"Client {client_no}, request {i}:"}
        with http.stream("POST", path, json=body) as r:
            assert r.status_code == 200, r.read()
            check_stream(list(read_events(r.iter_lines())), kind)
    return REQUESTS_PER_CLIENT


def test_16_streaming_clients_x_20_requests(http, model_id):
    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(one_client, http, model_id, c) for c in range(CLIENTS)]
        done = sum(f.result() for f in futures)  # re-raises any client's failure
    assert done == CLIENTS * REQUESTS_PER_CLIENT


def metric(http, name):
    text = http.get("/metrics").text
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def send_raw(base_url, auth_headers, body):
    """Sends a completions request on a raw socket (so the test can drop it) and returns the
    socket without reading the answer."""
    import json
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    payload = json.dumps(body).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n")
    for k, v in auth_headers.items():
        head += f"{k}: {v}\r\n"
    sock.sendall(head.encode() + b"\r\n" + payload)
    return sock


def test_dropped_clients_free_their_slots(http, base_url, auth_headers, model_id):
    """Clients that leave mid-answer, streamed or not, stop their generation and free their
    slots."""
    slots = int(os.environ.get("BITNET_SERVER_SLOTS", "4"))
    long_tokens = int(os.environ.get("BITNET_LONG_TOKENS", "3000"))
    before = metric(http, "bitnet_completion_tokens_total")
    body = {"model": model_id, "prompt": "Tell a very long story.", "max_tokens": long_tokens,
            "temperature": 1.0, "ignore_eos": True}
    socks = [send_raw(base_url, auth_headers, {**body, "seed": s, "stream": s % 2 == 0})
             for s in range(slots)]
    deadline = time.monotonic() + 30
    while metric(http, "bitnet_active_slots") != slots:
        assert time.monotonic() < deadline, "the long requests never all started"
        time.sleep(0.01)
    for s in socks:
        s.close()
    # every slot is freed: the engine notices the closed streams at its next tokens
    deadline = time.monotonic() + 30
    while metric(http, "bitnet_active_slots") != 0:
        assert time.monotonic() < deadline, "slots still busy 30 s after the clients left"
        time.sleep(0.05)
    generated = metric(http, "bitnet_completion_tokens_total") - before
    assert generated < slots * long_tokens // 2, (
        f"{generated} tokens generated: the dropped sequences ran on")
    # a follow-up gets a slot at once (nothing queued, nothing active) and completes
    assert metric(http, "bitnet_queue_depth") == 0
    r = http.post("/v1/completions", json={"model": model_id, "prompt": "Hi", "max_tokens": 4})
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] >= 1
