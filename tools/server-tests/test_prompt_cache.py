"""Prompt caching across requests, through the official `openai` client on a real chat model
(SmolLM2-135M-Instruct, served with 4 slots; see serve_openai.rs):

- the second turn of a chat with a ~1,000-token history takes that history from the cache
  (`usage.prompt_tokens_details.cached_tokens`, `timings.cache_n`), reaches its first token in at
  most a quarter of the first turn's time, and answers exactly as without the cache
  (`cache_prompt: false`, greedy);
- requests with shared and different prefixes in flight together over the 4 slots each answer
  exactly as alone (no cross-talk between slots that are reused for other prefixes).
"""

import re
import threading
import time
from pathlib import Path

ALICE = Path(__file__).resolve().parents[2] / "testdata" / "data" / "alice29.txt"


def history_text(http, tokens=950):
    """The start of Alice in Wonderland's first chapter, about `tokens` tokens long."""
    text = ALICE.read_text(encoding="utf-8")
    start = text.index("Alice was beginning")
    words = text[start:].split()
    n = 700
    while True:
        chunk = " ".join(words[:n])
        count = len(http.post("/tokenize", json={"content": chunk}).json()["tokens"])
        if count >= tokens:
            return chunk, count
        n += 60


def stream_chat(client, model_id, messages, cache_prompt=True, max_tokens=24):
    """A greedy streamed chat answer: (text, seconds to the first content, usage)."""
    start = time.perf_counter()
    first = None
    text = []
    usage = None
    for chunk in client.chat.completions.create(
            model=model_id, messages=messages, temperature=0, max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True},
            extra_body={"cache_prompt": cache_prompt}):
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter() - start
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert first is not None, "no content streamed"
    return "".join(text), first, usage


def cached(usage):
    return usage.prompt_tokens_details.cached_tokens


def metric(http, name):
    m = re.search(rf"^{name} (\d+)$", http.get("/metrics").text, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def test_second_turn_reuses_the_history(client, http, model_id):
    story, story_tokens = history_text(http)
    turn1 = [
        {"role": "system", "content": "You answer questions about this story.\n\n" + story},
        {"role": "user", "content": "Who does Alice follow down the hole?"},
    ]
    answer1, ttft1, usage1 = stream_chat(client, model_id, turn1)
    assert cached(usage1) == 0
    shared = usage1.prompt_tokens
    assert shared >= story_tokens >= 950

    turn2 = turn1 + [
        {"role": "assistant", "content": answer1},
        {"role": "user", "content": "What did she see on the shelves?"},
    ]
    cached_before = metric(http, "bitnet_prompt_tokens_cached_total")
    answer2, ttft2, usage2 = stream_chat(client, model_id, turn2)
    assert usage2.prompt_tokens > shared
    assert cached(usage2) >= 0.95 * shared, (cached(usage2), shared)
    assert metric(http, "bitnet_prompt_tokens_cached_total") - cached_before == cached(usage2)
    ratio = ttft2 / ttft1
    print(f"\nshared prefix {shared} tokens, cached {cached(usage2)}; "
          f"time to first token {ttft1:.3f} s then {ttft2:.3f} s (ratio {ratio:.3f})")
    assert ratio <= 0.25, (ttft1, ttft2)

    # The same turns evaluated in full give the same greedy answers.
    plain1, _, usage = stream_chat(client, model_id, turn1, cache_prompt=False)
    assert cached(usage) == 0
    assert plain1 == answer1
    plain2, _, usage = stream_chat(client, model_id, turn2, cache_prompt=False)
    assert cached(usage) == 0
    assert plain2 == answer2

    # `timings` (llama.cpp's extension) splits the prompt into cached and evaluated tokens.
    r = http.post("/v1/chat/completions", json={
        "model": model_id, "messages": turn2, "temperature": 0, "max_tokens": 4})
    body = r.json()
    assert r.status_code == 200, body
    timings = body["timings"]
    assert timings["cache_n"] == body["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert timings["cache_n"] >= 0.95 * shared
    assert timings["cache_n"] + timings["prompt_n"] == body["usage"]["prompt_tokens"]


def test_concurrent_shared_and_different_prefixes_do_not_mix(client, http, model_id):
    story, _ = history_text(http, tokens=300)
    other = ("The Mock Turtle sighed deeply, and drew the back of one flapper across his eyes. "
             "He looked at Alice, and tried to speak, but for a minute or two sobs choked his "
             "voice.")
    questions = ["Who is late?", "What is the rabbit holding?", "Where does Alice fall?",
                 "Name one thing in the story."]
    conversations = []
    for q in questions:
        conversations.append([{"role": "system", "content": "Story:\n" + story},
                              {"role": "user", "content": q}])
    for q in questions[:2]:
        conversations.append([{"role": "system", "content": "Story:\n" + other},
                              {"role": "user", "content": q}])
    conversations.append([{"role": "user", "content": "Count from one to ten."}])
    conversations.append([{"role": "user", "content": "Write one sentence about the sea."}])

    solo = [stream_chat(client, model_id, c, cache_prompt=False, max_tokens=20)[0]
            for c in conversations]

    for _round in range(2):
        results = [None] * len(conversations)

        def ask(i):
            results[i] = stream_chat(client, model_id, conversations[i], max_tokens=20)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(conversations))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, expected in enumerate(solo):
            assert results[i] is not None, f"request {i} failed"
            assert results[i][0] == expected, (i, results[i][0], expected)
        # The four questions on one story share its ~300 tokens.
        assert sum(cached(r[2]) for r in results) > 0
