#!/usr/bin/env python3
"""llama.cpp's prompt (pp) and generation (tg) speed on a GGUF file through PyPI llama-cpp-python
(pinned in tools/bench/requirements-llamacpp.txt), in `bitnet bench`'s conventions: the same
pseudo-random token ids, pp = the prompt in one batch, tg = tokens one at a time from an empty
context, one warm-up run, then `-r` runs; prints `test t/s` lines (t/s the mean of the runs).

`Llama.eval` adds a Python call per tg token on llama.cpp's side (a few µs against a decode step
of several ms), so ratios against it slightly flatter the other engine.

With `-b B` (B > 1) the tg test also runs as `bitnet bench -b B` does: B sequences decoded
together, one `llama_decode` per step with one new token of each sequence (a context of B
sequences, llama.cpp's low-level API), and prints `tgN xB t/s` with the aggregate rate.

    python3 tools/bench/llamacpp_bench.py MODEL.gguf [-p 512] [-n 128] [-r 1] [-t 2] [-b 8]
"""

import argparse
import time

import llama_cpp
from llama_cpp import Llama


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=512, help="prompt length (0 skips)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (0 skips)")
    ap.add_argument("-r", type=int, default=1, help="repetitions after the warm-up")
    ap.add_argument("-t", type=int, default=2, help="threads")
    ap.add_argument("-b", type=int, default=1, help="sequences decoded together (tg only)")
    args = ap.parse_args()
    n_ctx = max(args.p, args.n, 1)
    llm = Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=max(args.p, 1),
        n_ubatch=max(args.p, 1),
        n_threads=args.t,
        n_threads_batch=args.t,
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    def token(i: int) -> int:
        return (i * 2654435761) % n_vocab  # bitnet bench's ids

    if args.p > 0:
        prompt = [token(i) for i in range(args.p)]
        rates = []
        for rep in range(args.r + 1):
            llm.reset()
            start = time.perf_counter()
            llm.eval(prompt)
            secs = time.perf_counter() - start
            if rep > 0:
                rates.append(args.p / secs)
        print(f"pp{args.p} {sum(rates) / len(rates):.2f}")
    if args.n > 0:
        rates = []
        for rep in range(args.r + 1):
            llm.reset()
            start = time.perf_counter()
            for i in range(args.n):
                llm.eval([token(i)])
            secs = time.perf_counter() - start
            if rep > 0:
                rates.append(args.n / secs)
        print(f"tg{args.n} {sum(rates) / len(rates):.2f}")
    if args.n > 0 and args.b > 1:
        rates = [batched_decode(llm, args.n, args.b, args.t, token) for _ in range(args.r + 1)]
        rates = rates[1:]
        print(f"tg{args.n}x{args.b} {sum(rates) / len(rates):.2f}")


def batched_decode(llm: Llama, n: int, b: int, threads: int, token) -> float:
    """Aggregate t/s of `b` sequences of `n` tokens decoded together, in a fresh context."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n * b
    params.n_batch = b
    params.n_ubatch = b
    params.n_seq_max = b
    params.n_threads = threads
    params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
    if not ctx:
        raise SystemExit(f"llama.cpp could not make a context of {b} sequences")
    batch = llama_cpp.llama_batch_init(b, 0, 1)
    try:
        start = time.perf_counter()
        for i in range(n):
            batch.n_tokens = b
            for s in range(b):
                batch.token[s] = token(i + s * n)  # bitnet bench's stream of sequence s
                batch.pos[s] = i
                batch.n_seq_id[s] = 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise SystemExit(f"llama_decode failed at step {i}")
        return n * b / (time.perf_counter() - start)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


if __name__ == "__main__":
    main()
