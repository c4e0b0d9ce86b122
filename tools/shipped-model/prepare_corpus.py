#!/usr/bin/env python3
"""Rebuild the shipped model's training corpus and held-out text from public-domain sources.

Sources (both offline once installed):
  * the King James Bible from Debian's `bible-kjv` package (`/usr/bin/bible`);
  * the English texts of the Canterbury corpus, shipped in the source package of PyPI `brotli`
    (tests/testdata/{alice29,asyoulik,plrabn12,lcet10}.txt).

Split (fixed, deterministic):
  * KJV: every chapter whose running index (0-based, Genesis 1 = 0) satisfies i % 50 == 25 is held out,
    the rest is training text. One verse per line, chapters separated by a blank line, verse labels removed.
  * Canterbury: the last 12,000 characters of alice29.txt (cut at a paragraph start) are held out;
    everything else is training text. Hard-wrapped lines are joined into one line per paragraph.

Usage: prepare_corpus.py [--brotli-src DIR] [--out DIR]
Writes OUT/train.txt and OUT/heldout.txt (default OUT = /tmp/shipped-corpus).
When `bible` is missing it runs `apt-get install -y bible-kjv` (needs root: `id -u` must be 0).
When --brotli-src is not given and /tmp/brotli_src is absent, it runs
`pip download --no-deps --no-binary :all: brotli==1.2.1` and unpacks the sdist.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile

CANTERBURY = ["alice29.txt", "asyoulik.txt", "plrabn12.txt", "lcet10.txt"]
KJV_HOLDOUT_EVERY = 50
KJV_HOLDOUT_PHASE = 25
ALICE_HOLDOUT_CHARS = 12000
VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def ensure_bible():
    if shutil.which("bible"):
        return
    if os.geteuid() != 0:
        sys.exit("`bible` (Debian package bible-kjv) is missing and this is not root: "
                 "run `sudo apt-get install -y bible-kjv` first")
    subprocess.run(["apt-get", "install", "-y", "bible-kjv"], check=True)


def kjv_chapters():
    """[(book, chapter, [verse texts])] in canonical order."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "100000"}).stdout
    chapters = []
    key = None
    for line in out.splitlines():
        m = VERSE.match(line)
        if not m:
            if line.strip():
                # -f prints one verse per line; anything else is a continuation line
                chapters[-1][2][-1] += " " + line.strip()
            continue
        book, ch, _verse, text = m.groups()
        if (book, ch) != key:
            key = (book, ch)
            chapters.append((book, int(ch), []))
        chapters[-1][2].append(" ".join(text.split()))
    return chapters


def brotli_testdata(src):
    if src is None:
        found = glob.glob("/tmp/brotli_src/brotli-*/tests/testdata")
        if found:
            return found[0]
        os.makedirs("/tmp/brotli_src", exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "brotli==1.2.1", "-d", "/tmp/brotli_src"], check=True)
        sdist = glob.glob("/tmp/brotli_src/brotli-*.tar.gz")[0]
        with tarfile.open(sdist) as tf:
            tf.extractall("/tmp/brotli_src", filter="data")
        return glob.glob("/tmp/brotli_src/brotli-*/tests/testdata")[0]
    return os.path.join(src, "tests", "testdata")


def paragraphs(raw):
    """Join hard-wrapped lines: one paragraph per line, paragraphs separated by blank lines."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", raw)]
    return "\n\n".join(p for p in paras if p) + "\n"


def ascii_clean(text):
    return text.encode("ascii", "ignore").decode("ascii")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brotli-src", default=None)
    ap.add_argument("--out", default="/tmp/shipped-corpus")
    args = ap.parse_args()
    ensure_bible()
    os.makedirs(args.out, exist_ok=True)

    train, held = [], []
    for i, (_book, _ch, verses) in enumerate(kjv_chapters()):
        block = "\n".join(verses) + "\n"
        (held if i % KJV_HOLDOUT_EVERY == KJV_HOLDOUT_PHASE else train).append(block)

    tdir = brotli_testdata(args.brotli_src)
    for name in CANTERBURY:
        with open(os.path.join(tdir, name), "rb") as f:
            text = ascii_clean(paragraphs(f.read().decode("latin-1")))
        if name == "alice29.txt":
            cut = text.index("\n\n", len(text) - ALICE_HOLDOUT_CHARS) + 2
            train.append(text[:cut])
            held.append(text[cut:])
        else:
            train.append(text)

    for fname, parts in (("train.txt", train), ("heldout.txt", held)):
        path = os.path.join(args.out, fname)
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(parts))
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
