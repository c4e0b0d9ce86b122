#!/usr/bin/env python3
"""Benchmark: aggregate decode throughput of `bitnet serve` with 8 sequences in flight against
one sequence alone, on the same model (continuous batching should give >= 3x).

    python3 tools/server-tests/bench_batching.py -m MODEL.gguf [--bitnet target/release/bitnet]
        [--tokens 128] [--parallel 8] [-t THREADS] [--rounds 5]

Starts its own server on a free loopback port. Rates are generated tokens per second of wall
time (end-of-generation banned, so every request makes exactly --tokens tokens). Each round
measures one sequence alone, then --parallel in flight, seconds apart on the same server (a
shared host drifts between runs); prints every round's rates and ratio, then the medians of the
rates and of the ratios; exits 1 when the median ratio is under 3."""

import argparse
import concurrent.futures as cf
import statistics
import subprocess
import sys
import time

import httpx


def complete(client, url, tokens, seed):
    """One non-streamed completion of exactly `tokens` tokens: (start, end, tokens)."""
    body = {"prompt": "Once upon a time, in a land far away,", "max_tokens": tokens,
            "temperature": 0.8, "seed": seed, "ignore_eos": True}
    start = time.perf_counter()
    r = client.post(url + "/v1/completions", json=body)
    r.raise_for_status()
    return start, time.perf_counter(), r.json()["usage"]["completion_tokens"]


def run(url, n, tokens):
    """Aggregate generated tokens/s with `n` requests in flight (prompts are 11 tokens, so
    prompt evaluation is a small share of the time). The requests share one HTTP client, made
    before the clock starts, as an application's client (e.g. `openai.OpenAI`) is: building an
    httpx client takes ~20 ms of this machine's CPU, which `httpx.post` spends per request."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    with httpx.Client(timeout=600, limits=limits) as client, cf.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda s: complete(client, url, tokens, s), range(n)))
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    return sum(r[2] for r in results) / (end - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--bitnet", default="target/release/bitnet")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cmd = [args.bitnet, "serve", "-m", args.model, "--port", "0", "--parallel",
           str(args.parallel), "--ctx", str(args.tokens + 64)]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip().removeprefix("listening on ")
        for _ in range(600):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        run(url, 1, 8)  # warm up (first cache allocations)
        print(f"model: {args.model}")
        singles, batches, ratios = [], [], []
        for r in range(max(args.rounds, 1)):
            singles.append(run(url, 1, args.tokens))
            batches.append(run(url, args.parallel, args.tokens))
            ratios.append(batches[-1] / singles[-1])
            print(f"round {r + 1}: one sequence {singles[-1]:.1f} tokens/s, {args.parallel} in "
                  f"flight {batches[-1]:.1f} tokens/s, ratio {ratios[-1]:.2f}x")
        single, batched = statistics.median(singles), statistics.median(batches)
        ratio = statistics.median(ratios)
        print(f"single sequence decode: {single:.1f} tokens/s (median)")
        print(f"{args.parallel} in flight, aggregate decode: {batched:.1f} tokens/s (median)")
        print(f"ratio: {ratio:.2f}x (median of the rounds' ratios)")
        return 0 if ratio >= 3 else 1
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
