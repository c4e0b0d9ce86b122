"""Graceful shutdown of a real `bitnet serve`: four streams are decoding and a fifth (whole,
not streamed) request waits in the queue; the test sends the server a signal mid-stream, and
then checks that
  - every stream that had started ends cleanly: its last chunk (a finish reason, and usage) then
    `[DONE]` when the answers fit in the grace period; an error event in OpenAI's shape
    (503 `server_shutting_down`) then `[DONE]` when the grace period runs out first;
  - the queued request, admitted before the signal, is answered (200) within the grace period,
    or gets a 503 `server_shutting_down` when the grace period runs out;
  - while draining, `/health` answers 503 `{"status": "draining"}` (and `bitnet health-check`
    fails naming it), new requests get 503 in the server's error shape, `/metrics` still answers;
  - once the streams are over the server closes its port (the Rust side checks the exit status).

The Rust integration test (crates/bitnet-cli/tests/serve_openai.rs) starts the server and runs
one of the two tests, each on its own server (a server shuts down once). Environment besides
conftest.py's:
  BITNET_SERVER_PID       the server's process id (the test signals it)
  BITNET_BIN              the `bitnet` binary (for `bitnet health-check`)
  BITNET_SHUTDOWN_SIGNAL  TERM or INT (Ctrl-C)
  BITNET_STREAM_TOKENS    max_tokens of each stream (the end-of-text tokens are banned)
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import httpx

from sse import read_events

STREAMS = 4


def _env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set: run through `cargo test -p bitnet-cli --test serve_openai`"
    return value


class Stream(threading.Thread):
    """One streamed answer read to its end; `started` is set once content has arrived."""

    def __init__(self, base_url, index, max_tokens):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.index = index
        self.max_tokens = max_tokens
        self.started = threading.Event()
        self.status = None
        self.events = []
        self.failure = None

    def run(self):
        chat = self.index % 2 == 1
        common = {"max_tokens": self.max_tokens, "stream": True, "seed": self.index,
                  "ignore_eos": True, "stream_options": {"include_usage": True}}
        if chat:
            path = "/v1/chat/completions"
            body = {**common, "messages": [{"role": "user", "content": f"Tell story {self.index}."}]}
        else:
            path = "/v1/completions"
            body = {**common, "prompt": f"And it came to pass in the year {self.index},"}
        try:
            with httpx.Client(base_url=self.base_url, timeout=300) as http:
                with http.stream("POST", path, json=body) as r:
                    self.status = r.status_code
                    for event in read_events(r.iter_lines()):
                        self.events.append(event)
                        if "choices" in event and any(_text(c) for c in event["choices"]):
                            self.started.set()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.failure = e
        finally:
            self.started.set()


class Whole(threading.Thread):
    """One non-streamed completion; `status` and `body` once answered."""

    def __init__(self, base_url, max_tokens):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.status = None
        self.body = None
        self.failure = None

    def run(self):
        body = {"prompt": "In the beginning", "max_tokens": self.max_tokens, "ignore_eos": True}
        try:
            with httpx.Client(base_url=self.base_url, timeout=300) as http:
                r = http.post("/v1/completions", json=body)
                self.status, self.body = r.status_code, r.json()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.failure = e


def _wait_queued(http, n):
    """Waits until `n` requests wait for a slot (admitted, not yet decoding)."""
    deadline = time.monotonic() + 30
    while f"bitnet_queue_depth {n}\n" not in http.get("/metrics").text:
        assert time.monotonic() < deadline, "the queued request never showed in /metrics"
        time.sleep(0.02)


def _text(choice):
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice.get("text") or ""


def _error_shape(body, code):
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, body
    assert err["type"] == "unavailable_error", body
    assert err["code"] == code, body
    assert err["message"], body
    return err


def _start_streams_and_signal(base_url, http, max_tokens, queued_tokens):
    """Four streams decoding (the server has --parallel 4) and one whole request queued behind
    them; then the signal."""
    pid = int(_env("BITNET_SERVER_PID"))
    sig = {"TERM": signal.SIGTERM, "INT": signal.SIGINT}[_env("BITNET_SHUTDOWN_SIGNAL")]
    streams = [Stream(base_url, i, max_tokens) for i in range(STREAMS)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(120), f"stream {s.index} produced nothing in 120 s"
        assert s.failure is None, f"stream {s.index} failed before the signal: {s.failure!r}"
    queued = Whole(base_url, queued_tokens)
    queued.start()
    _wait_queued(http, 1)
    os.kill(pid, sig)
    return streams, queued


def _wait_draining(http):
    """Polls /health until it says draining (the signal is handled asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        r = http.get("/health")
        if r.status_code == 503 and r.json() == {"status": "draining"}:
            return
        assert r.status_code == 200 and r.json() == {"status": "ok"}, (r.status_code, r.text)
        assert time.monotonic() < deadline, "/health never reported draining"
        time.sleep(0.02)


def _health_check(base_url):
    port = base_url.rsplit(":", 1)[1]
    return subprocess.run([_env("BITNET_BIN"), "health-check", "--port", port, "--timeout", "5"],
                          capture_output=True, text=True, timeout=30)


def _check_drain_refusals(base_url, http):
    """While draining: /health, health-check, new requests on a kept-alive and a new connection."""
    _wait_draining(http)
    probe = _health_check(base_url)
    assert probe.returncode == 1, probe
    assert "503" in probe.stderr and "draining" in probe.stderr, probe.stderr
    for client in (http, httpx.Client(base_url=base_url, timeout=30)):
        r = client.post("/v1/completions", json={"prompt": "In the beginning", "max_tokens": 4})
        assert r.status_code == 503, r.text
        _error_shape(r.json(), "server_shutting_down")
        r = client.post("/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
        assert r.status_code == 503, r.text
        _error_shape(r.json(), "server_shutting_down")
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert 'bitnet_requests_total{endpoint="/v1/completions",status="503"}' in metrics.text


def _wait_port_closed(base_url, seconds):
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server still listens {seconds} s after the streams ended")


def _choice_chunks(events):
    return [e for e in events if e.get("choices")]


def test_streams_finish_within_grace(base_url):
    max_tokens = int(_env("BITNET_STREAM_TOKENS"))
    probe = _health_check(base_url)
    assert probe.returncode == 0 and "200" in probe.stdout, probe
    with httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}
        # The queued answer starts when a stream ends, so the drain lasts about two answers.
        streams, queued = _start_streams_and_signal(base_url, http, max_tokens, max_tokens)
        _check_drain_refusals(base_url, http)
        assert queued.is_alive(), \
            "every answer ended before the drain was checked: raise BITNET_STREAM_TOKENS"
    queued.join(300)
    assert queued.failure is None, repr(queued.failure)
    assert queued.status == 200, queued.body
    assert queued.body["usage"]["completion_tokens"] == max_tokens, queued.body
    for s in streams:
        s.join(300)
        assert not s.is_alive(), f"stream {s.index} never ended"
        assert s.failure is None, f"stream {s.index}: {s.failure!r}"  # includes a missing [DONE]
        assert s.status == 200
        assert not any("error" in e for e in s.events), s.events[-3:]
        last_choice = _choice_chunks(s.events)[-1]["choices"][0]
        assert last_choice["finish_reason"] in ("length", "stop"), last_choice
        usage = s.events[-1]["usage"]
        assert s.events[-1]["choices"] == [] and 1 <= usage["completion_tokens"] <= max_tokens
        if last_choice["finish_reason"] == "length":
            assert usage["completion_tokens"] == max_tokens, usage
    _wait_port_closed(base_url, 15)


def test_streams_past_grace_end_with_an_error(base_url):
    max_tokens = int(_env("BITNET_STREAM_TOKENS"))
    with httpx.Client(base_url=base_url, timeout=30) as http:
        streams, queued = _start_streams_and_signal(base_url, http, max_tokens, max_tokens)
        _check_drain_refusals(base_url, http)
    queued.join(120)
    assert queued.failure is None, repr(queued.failure)
    assert queued.status == 503, queued.body
    assert "grace period" in _error_shape(queued.body, "server_shutting_down")["message"]
    for s in streams:
        s.join(120)
        assert not s.is_alive(), f"stream {s.index} never ended"
        assert s.failure is None, f"stream {s.index}: {s.failure!r}"  # includes a missing [DONE]
        assert s.status == 200
        assert any(_text(c) for e in _choice_chunks(s.events) for c in e["choices"])
        last = s.events[-1]
        assert "error" in last, f"stream {s.index} was not cut off: {json.dumps(last)[:300]}"
        err = _error_shape(last, "server_shutting_down")
        assert "grace period" in err["message"], err
        assert all(c["finish_reason"] is None for e in _choice_chunks(s.events)
                   for c in e["choices"]), "a cut-off stream claims to have finished"
    _wait_port_closed(base_url, 15)
