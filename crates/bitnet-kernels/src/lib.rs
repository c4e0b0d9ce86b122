//! bitnet-kernels (work in progress).
