#!/usr/bin/env python3
"""A tiny random-weight BERT cross-encoder (reranker) and its reference scores, for rank pooling.

Writes testdata/embeddings/tiny-bert-reranker/: a Hugging Face `BertForSequenceClassification`
checkpoint (config.json, model.safetensors: 2 layers, hidden 16, 2 heads, FFN 32, 512 positions,
2 token types, num_labels 1; random weights from torch.manual_seed(0), initializer_range 0.5 and
LayerNorm weights/biases randomised too, so every part of the graph moves the score) with
all-MiniLM-L6-v2's WordPiece vocabulary (vocab.txt, tokenizer_config.json: uncased), and
reference.json:

  {"producer": {...}, "pairs": [{"query", "document", "ids", "token_type_ids", "score"}, ...]}

- ids / token_type_ids: transformers' BertTokenizerFast on the pair (query, document):
  [CLS] query [SEP] document [SEP], segment 0 then 1.
- score: BertForSequenceClassification(...).logits[0, 0] at batch 1, float32: the pooler
  (dense + tanh over [CLS]) and the classifier, which `bitnet convert` writes as llama.cpp's
  cls.weight/cls.bias and cls.output.weight/cls.output.bias.

Run: python tools/embeddings/make_tiny_reranker.py [MINILM_DIR]
(MINILM_DIR: the all-MiniLM-L6-v2 folder scripts/fetch-test-data.sh caches; packages pinned in
tools/embeddings/requirements.txt)
"""

import json
import os
import shutil
import sys

import numpy as np
import tokenizers
import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("BITNET_CACHE", os.path.expanduser("~/.cache/bitnet-rs"))
MINILM = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "models/all-MiniLM-L6-v2")
OUT = os.path.join(REPO, "testdata/embeddings/tiny-bert-reranker")

with open(os.path.join(REPO, "testdata/data/alice29.txt"), encoding="latin-1") as f:
    ALICE = f.read()
PARA = [p.strip().replace("\r", "") for p in ALICE.split("\n\n") if len(p.strip()) > 600]

QUERIES = [
    "What is the capital of France?",
    "how do pandas live",
    "Rust memory safety",
    "Alice and the White Rabbit",
    "",
    "Ça va? Qu'est-ce que c'est?",
]
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "The giant panda is a bear species endemic to China.",
    "Rust is a systems programming language focused on safety.",
    "A machine is a physical system that uses power to apply forces.",
    "hello",
    "Düsseldorf liegt am Rhein; München an der Isar.",
    PARA[0],
    " ".join(PARA[1:3])[:1500],
]


def main():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        initializer_range=0.5,
        layer_norm_eps=1e-12,
        num_labels=1,
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            elif name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.3)
    model.eval()
    tok = BertTokenizerFast.from_pretrained(MINILM)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    model.save_pretrained(OUT, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(MINILM, name), os.path.join(OUT, name))

    pairs = []
    scores = []
    for q in QUERIES:
        for d in DOCUMENTS:
            enc = tok(q, d)
            ids, types = enc["input_ids"], enc["token_type_ids"]
            assert len(ids) <= 512
            with torch.no_grad():
                t = torch.tensor([ids])
                logits = model(input_ids=t, attention_mask=torch.ones_like(t),
                               token_type_ids=torch.tensor([types])).logits
            score = float(logits[0, 0].to(torch.float32))
            scores.append(score)
            pairs.append({
                "query": q,
                "document": d,
                "ids": [int(i) for i in ids],
                "token_type_ids": [int(i) for i in types],
                "score": float("%.9g" % score),
            })
    out = {
        "producer": {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "command": "python tools/embeddings/make_tiny_reranker.py",
        },
        "pairs": pairs,
    }
    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    s = np.array(scores)
    lens = [len(p["ids"]) for p in pairs]
    print(f"wrote {OUT}: {len(pairs)} pairs, {min(lens)}..{max(lens)} ids, "
          f"scores {s.min():.4f}..{s.max():.4f} (std {s.std():.4f})")


if __name__ == "__main__":
    main()
