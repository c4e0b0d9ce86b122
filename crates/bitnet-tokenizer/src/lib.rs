//! bitnet-tokenizer (work in progress).
