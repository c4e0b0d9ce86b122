//! bitnet-quant (work in progress).
