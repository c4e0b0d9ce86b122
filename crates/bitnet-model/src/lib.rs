//! bitnet-model (work in progress).
