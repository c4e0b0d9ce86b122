"""Hostile input: well over 1000 malformed or hostile requests (mutated JSON, wrong types and
absurd values, bad UTF-8, huge bodies, deep nesting, garbage that is not HTTP, slow clients that
never finish). None may crash the server or get a 5xx answer, and it must keep answering
correctly afterwards. Deterministic: a fixed seed drives every mutation."""

import concurrent.futures as cf
import json
import random
import socket
import time

import httpx

SEED = 20261128
ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"]

VALID = {
    "/v1/chat/completions": {"model": "default", "max_tokens": 4,
                             "messages": [{"role": "user", "content": "hello"}]},
    "/v1/completions": {"model": "default", "prompt": "hello", "max_tokens": 4},
    "/tokenize": {"content": "hello world", "add_special": True},
    "/detokenize": {"tokens": [1, 2, 3]},
}

ODD_VALUES = [None, True, -1, 0, 2**31, 2**63, -2**63, 10**30, 1e308, -1e308, 0.5, "", "x" * 5000,
              "\u0000", "\ud7ff\ue000", "🦀" * 100, [], [[]], {}, {"a": {"b": {}}}, [1] * 500,
              ["a"] * 50, [[1, 2], [3]], {"role": "user"}, [{"role": 5, "content": None}],
              [{"type": "image_url", "image_url": "file:///etc/passwd"}], "../../../etc/passwd"]

FIELDS = ["model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "top_k", "min_p", "stop", "seed", "n", "stream", "stream_options", "logprobs",
          "top_logprobs", "logit_bias", "frequency_penalty", "presence_penalty", "echo", "suffix",
          "content", "tokens", "add_special", "with_pieces", "ignore_eos", "best_of"]


def mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            data = data[:pos]
        else:
            data[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\u", b"\xff\xfe",
                                        b"\xc3\x28", b"\xed\xa0\x80", b"NaN", b"-", b"1e99999"])
    return bytes(data)


def hostile_bodies(rng, count):
    """(endpoint, body bytes, headers) triples."""
    out = []
    for i in range(count):
        endpoint = rng.choice(ENDPOINTS)
        valid = json.dumps(VALID[endpoint]).encode()
        kind = i % 5
        if kind in (0, 1):
            body = mutate_bytes(rng, valid)
        elif kind == 2:
            obj = dict(VALID[endpoint])
            for _ in range(rng.randint(1, 3)):
                obj[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
            if not isinstance(obj.get("max_tokens"), int) or obj.get("max_tokens", 0) > 64:
                obj["max_tokens"] = 4  # keep any generation short; the odd value is elsewhere
            body = json.dumps(obj).encode()
        elif kind == 3:
            body = rng.choice([
                b"\xff\xfe\xfd" * rng.randint(1, 100),
                b'{"prompt": "\xc3\x28\xa0\xa1", "max_tokens": 2}',
                b'{"content": "\xed\xa0\x80"}',
                b"[" * 100000,
                b'{"a":' * 5000,
                b"",
                b"null",
                b"[]",
                b"123",
                b'"just a string"',
                json.dumps({"tokens": [-1, 2**40]}).encode(),
                json.dumps({"tokens": list(range(100000, 100050))}).encode(),
            ])
        else:
            obj = dict(VALID[endpoint])
            obj["stream"] = True
            obj[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
            obj["max_tokens"] = 3
            body = json.dumps(obj).encode()
        headers = {"Content-Type": rng.choice(["application/json", "text/plain", "application/xml",
                                               "multipart/form-data; boundary=x", ""])}
        out.append((endpoint, body, headers))
    return out


def send(http, item):
    endpoint, body, headers = item
    r = http.post(endpoint, content=body, headers=headers)
    r.read()
    return r.status_code, r.text[:300], endpoint, body[:120]


def assert_still_serving(http):
    assert http.get("/health").json() == {"status": "ok"}
    r = http.post("/v1/completions", json={"model": "default", "prompt": "Hello", "max_tokens": 3})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1


def test_fuzzed_requests(http):
    rng = random.Random(SEED)
    items = hostile_bodies(rng, 1200)
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda it: send(http, it), items))
    errors = [r for r in results if r[0] >= 500]
    assert not errors, errors[:5]
    statuses = {r[0] for r in results}
    assert statuses <= {200, 400, 404, 413, 415, 422, 429}, statuses
    # every error answer is OpenAI-shaped JSON
    for status, text, endpoint, body in results:
        if status >= 400 and status != 413:
            assert text.startswith('{"error":'), (status, text, endpoint, body)
    assert len(results) >= 1000
    assert_still_serving(http)


def test_huge_bodies(http):
    for size in (2 << 20, 8 << 20, 32 << 20):
        r = http.post("/v1/completions", content=b'{"prompt": "' + b"a" * size + b'"}',
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"
    # a declared length far beyond the limit is refused without reading it
    host, port = http.base_url.host, http.base_url.port
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000000\r\n\r\n{\"prompt\":")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert_still_serving(http)


def test_garbage_and_slow_clients(http):
    host, port = http.base_url.host, http.base_url.port
    rng = random.Random(SEED + 1)
    # garbage that is not HTTP, and malformed request lines / headers
    for i in range(100):
        with socket.create_connection((host, port), timeout=10) as s:
            junk = rng.choice([
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))),
                b"GET / HTTP/9.9\r\n\r\n",
                b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg",
                b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
                b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"X: " + b"b" * 200000 + b"\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
            ])
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(1024)
            except OSError:
                pass  # the server may close on us; what matters is that it keeps serving
    # slow clients: half-sent headers and bodies that never complete, held open meanwhile
    slow = []
    for i in range(30):
        s = socket.create_connection((host, port), timeout=10)
        if i % 2:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"mes")
        else:
            s.sendall(b"GET /heal")
        slow.append(s)
    for _ in range(3):
        for s in slow:
            try:
                s.sendall(b"a")
            except OSError:
                pass
        time.sleep(0.2)
    # the server answers everyone else while the slow ones hang
    for _ in range(20):
        assert http.get("/health").status_code == 200
    assert_still_serving(http)
    for s in slow:
        s.close()
    assert_still_serving(http)


def request_counts(http):
    """/metrics' bitnet_requests_total as {(endpoint, status): count}."""
    counts = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("bitnet_requests_total{"):
            labels, n = line.rsplit(" ", 1)
            endpoint = labels.split('endpoint="', 1)[1].split('"', 1)[0]
            status = int(labels.split('status="', 1)[1].split('"', 1)[0])
            counts[(endpoint, status)] = counts.get((endpoint, status), 0) + int(n)
    return counts


def test_request_count(http):
    """/metrics counts every request the server answered, by endpoint and status, hostile ones
    included: after 300 fuzzed requests of this test's own, each (endpoint, status) counter has
    grown by exactly the answers this test received (the /metrics reads themselves included)."""
    before = request_counts(http)
    items = hostile_bodies(random.Random(SEED + 2), 300)
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda it: send(http, it), items))
    after = request_counts(http)
    expected = {}
    for status, _text, endpoint, _body in results:
        expected[(endpoint, status)] = expected.get((endpoint, status), 0) + 1
    expected[("/metrics", 200)] = expected.get(("/metrics", 200), 0) + 1  # the read of `before`
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    grown = {k: v for k, v in grown.items() if v}
    assert grown == expected, (grown, expected)
    assert sum(n for (_, status), n in expected.items() if 400 <= status < 500) >= 200, expected


def test_slow_clients_are_cut_off(http):
    """A client that does not finish its headers is disconnected, and one that does not finish
    its body gets 408, both after the server's --read-timeout (BITNET_READ_TIMEOUT seconds)."""
    import os
    timeout = float(os.environ.get("BITNET_READ_TIMEOUT", "30"))
    host, port = http.base_url.host, http.base_url.port
    with socket.create_connection((host, port), timeout=timeout * 5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        reply = s.recv(4096)  # b"" (closed) or an error status, never a wait forever
        assert time.monotonic() - started < timeout * 4
        assert not reply.startswith(b"HTTP/1.1 200"), reply[:100]
    with socket.create_connection((host, port), timeout=timeout * 5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"prompt\": ")
        started = time.monotonic()
        reply = s.recv(4096)
        assert time.monotonic() - started < timeout * 4
        assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
        assert b'"request_timeout"' in reply
    assert_still_serving(http)
