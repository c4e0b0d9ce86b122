"""Generation from Python against the `bitnet` CLI built from the same source: greedy text and
token counts equal `bitnet run` / `bitnet chat` on the shipped model and SmolLM2, streams
concatenate to `generate`'s text, seeds reproduce, and the GIL is released while computing."""

import json
import threading
import time
from pathlib import Path

import pytest

import bitnet
from conftest import SHIPPED, run_cli


def cli_run(cli: Path, model: Path, prompt: str, n: int, tmp_path: Path, *extra: str):
    """`bitnet run` greedy: its text (stdout less the final newline) and its receipt."""
    receipt = tmp_path / "receipt.json"
    out = run_cli(
        cli, "run", "-m", str(model), "-p", prompt, "-n", str(n), "--receipt", str(receipt), *extra
    )
    assert out.endswith("\n")
    return out[:-1], json.loads(receipt.read_text())


def assert_equals_cli(model: bitnet.Model, path: Path, cli, tmp_path, prompt: str, n: int):
    text = model.generate(prompt, max_tokens=n)
    cli_text, receipt = cli_run(cli, path, prompt, n, tmp_path)
    assert text == cli_text
    stream = model.stream(prompt, max_tokens=n)
    assert "".join(stream) == text
    assert len(stream.tokens) == receipt["generated_tokens"]
    assert stream.finish_reason == receipt["finish_reason"]
    assert model.tokenize(prompt) and len(model.tokenize(prompt)) == receipt["prompt_tokens"]
    return text, stream.tokens


def test_shipped_model_greedy_equals_bitnet_run(shipped, cli, tmp_path):
    text, tokens = assert_equals_cli(shipped, SHIPPED, cli, tmp_path, "In the beginning", 48)
    assert len(tokens) == 48 and len(text) > 100
    assert shipped.detokenize(tokens) == text


def test_smollm2_greedy_equals_bitnet_run(smollm2, smollm2_path, cli, tmp_path):
    text, tokens = assert_equals_cli(
        smollm2, smollm2_path, cli, tmp_path, "The three primary colours are", 40
    )
    assert len(tokens) >= 4 and text.strip()


def test_stop_strings_and_sampling_match_the_cli(shipped, cli, tmp_path):
    prompt = "And the LORD said unto Moses,"
    kwargs = dict(max_tokens=60, temperature=0.9, top_k=20, top_p=0.9, seed=7, stop=["Israel"])
    text = shipped.generate(prompt, **kwargs)
    cli_text, receipt = cli_run(
        cli, SHIPPED, prompt, 60, tmp_path,
        "--temp", "0.9", "--top-k", "20", "--top-p", "0.9", "--seed", "7", "--stop", "Israel",
    )
    assert text == cli_text
    assert "".join(shipped.stream(prompt, **kwargs)) == text
    assert "Israel" not in text


def test_stream_pieces_concatenate_to_generate(smollm2):
    prompt = "Once upon a time"
    stream = smollm2.stream(prompt, max_tokens=30, stop="\n\n")
    assert stream.tokens is None and stream.finish_reason is None
    pieces = list(stream)
    assert len(pieces) > 1 and all(pieces)
    assert "".join(pieces) == smollm2.generate(prompt, max_tokens=30, stop="\n\n")
    assert stream.finish_reason in ("length", "stop_string", "end_of_generation")
    assert list(stream) == []  # exhausted stays exhausted


def test_dropping_a_stream_stops_it(shipped):
    stream = shipped.stream("In the beginning", max_tokens=100_000)
    first = next(stream)
    assert first
    del stream  # the generation thread stops at its next piece; the model stays usable
    assert shipped.generate("In the beginning", max_tokens=4)


def test_same_seed_same_text(shipped):
    kwargs = dict(max_tokens=40, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    a = shipped.generate("In the beginning", seed=11, **kwargs)
    assert a == shipped.generate("In the beginning", seed=11, **kwargs)
    others = {shipped.generate("In the beginning", seed=s, **kwargs) for s in (12, 13, 14)}
    assert others != {a}, "sampling never varied with the seed"
    assert shipped.generate("In the beginning", max_tokens=40) != a  # greedy is not this draw


def test_chat_equals_bitnet_chat(shipped, cli):
    question = "Who was Moses?"
    answer = shipped.chat([{"role": "user", "content": question}], max_tokens=40)
    out = run_cli(cli, "chat", "-m", str(SHIPPED), "-n", "40", stdin=question + "\n")
    assert out == answer + "\n"
    assert answer.strip()


def test_two_threads_generate_at_once(shipped, smollm2):
    expected = {
        "shipped": shipped.generate("In the beginning", max_tokens=64),
        "smollm2": smollm2.generate("The capital of France is", max_tokens=32),
    }
    results = {}

    def work(name, model, prompt, n):
        results[name] = model.generate(prompt, max_tokens=n)

    threads = [
        threading.Thread(target=work, args=("shipped", shipped, "In the beginning", 64)),
        threading.Thread(target=work, args=("smollm2", smollm2, "The capital of France is", 32)),
        threading.Thread(target=work, args=("shipped-again", shipped, "In the beginning", 64)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a generating thread did not finish"
    assert results["shipped"] == expected["shipped"]
    assert results["shipped-again"] == expected["shipped"]
    assert results["smollm2"] == expected["smollm2"]


def test_the_gil_is_released_while_generating(smollm2):
    counter = [0]
    running = threading.Event()
    done = threading.Event()

    def count():
        running.set()
        while not done.is_set():
            counter[0] += 1

    thread = threading.Thread(target=count)
    thread.start()
    running.wait()
    start_count = counter[0]
    start = time.perf_counter()
    smollm2.generate("The capital of France is", max_tokens=48)
    elapsed = time.perf_counter() - start
    counted = counter[0] - start_count
    done.set()
    thread.join()
    # Had the call held the GIL, the counting thread could not have run during it at all.
    assert elapsed > 0.05, f"generation too short to tell ({elapsed:.3f} s)"
    assert counted > 10_000, f"the counting thread ran {counted} times in {elapsed:.2f} s"


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}


def test_json_schema_output_validates(smollm2):
    import jsonschema

    for seed in range(3):
        text = smollm2.generate("A person as JSON:", max_tokens=80, temperature=1.0, seed=seed,
                                json_schema=PERSON)
        jsonschema.validate(json.loads(text), PERSON)
    # chat and stream take the schema too, as a JSON string as well as a dict
    answer = smollm2.chat([{"role": "user", "content": "Describe a person."}], max_tokens=80,
                          json_schema=json.dumps(PERSON))
    jsonschema.validate(json.loads(answer), PERSON)
    streamed = "".join(smollm2.stream("Person:", max_tokens=80, json_schema=PERSON))
    jsonschema.validate(json.loads(streamed), PERSON)


def test_json_schema_greedy_equals_bitnet_run(shipped, cli, tmp_path):
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    text = shipped.generate("In the beginning", max_tokens=60, json_schema=PERSON)
    cli_text, _ = cli_run(cli, SHIPPED, "In the beginning", 60, tmp_path, "--json-schema", str(schema))
    assert text == cli_text
    json.loads(text)


def test_a_schema_that_cannot_be_enforced_raises(shipped):
    with pytest.raises(ValueError, match="uniqueItems"):
        shipped.generate("x", json_schema={"type": "array", "uniqueItems": True})
    with pytest.raises(ValueError, match="json_schema is not valid JSON"):
        shipped.generate("x", json_schema="{not json")
    with pytest.raises(TypeError, match="json_schema must be a dict or a JSON string"):
        shipped.generate("x", json_schema=5)
