"""A strict reader of OpenAI-style server-sent event streams: every event must be one
`data: ` line followed by a blank line, every payload JSON except the final `[DONE]`."""

import json


class MalformedStream(AssertionError):
    pass


def read_events(lines):
    """Yields the JSON payloads of a stream given its lines (without newlines); raises
    MalformedStream on anything else. Returns after `data: [DONE]`, which must come last."""
    pending = None
    done = False
    for line in lines:
        if done:
            if line.strip():
                raise MalformedStream(f"data after [DONE]: {line!r}")
            continue
        if pending is None:
            if not line:
                raise MalformedStream("empty line where an event was expected")
            if not line.startswith("data: "):
                raise MalformedStream(f"not a data line: {line!r}")
            pending = line[len("data: "):]
        else:
            if line:
                raise MalformedStream(f"event not ended by a blank line: {line!r}")
            if pending == "[DONE]":
                done = True
            else:
                try:
                    yield json.loads(pending)
                except json.JSONDecodeError as e:
                    raise MalformedStream(f"payload is not JSON: {pending!r}") from e
            pending = None
    if not done:
        raise MalformedStream("stream ended without data: [DONE]")
