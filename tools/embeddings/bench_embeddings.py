#!/usr/bin/env python3
"""Throughput of POST /v1/embeddings: sentences per second with 1 and with 8 concurrent clients.

Each client sends one sentence per request (the 54 reference sentences of
testdata/embeddings/all-minilm-l6-v2.json, cycled) until `--requests` requests are done in all.

Usage: start `bitnet serve -m MODEL.gguf --embeddings`, then
    python3 tools/embeddings/bench_embeddings.py --url http://127.0.0.1:8080 [--requests 432]
Needs httpx (tools/server-tests/requirements.txt).
"""
import argparse
import json
import os
import threading
import time

import httpx

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(url, sentences, clients, total):
    counter = {"next": 0}
    lock = threading.Lock()

    def client():
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    i = counter["next"]
                    if i >= total:
                        return
                    counter["next"] += 1
                r = http.post("/v1/embeddings", json={"input": sentences[i % len(sentences)],
                                                      "encoding_format": "float"})
                r.raise_for_status()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--requests", type=int, default=432)
    args = p.parse_args()
    with open(os.path.join(REPO, "testdata/embeddings/all-minilm-l6-v2.json"), encoding="utf-8") as f:
        sentences = [s["text"] for s in json.load(f)["sentences"]]
    run(args.url, sentences, 1, 20)  # warm-up
    for clients in (1, 8):
        rate = run(args.url, sentences, clients, args.requests)
        print(f"{clients} client(s): {rate:.1f} sentences/s")


if __name__ == "__main__":
    main()
