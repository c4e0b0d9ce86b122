//! The preallocated key/value cache: per layer, `capacity` positions of K and V rows
//! (`n_head_kv · head_dim` wide), stored as F16 by default like bitnet.cpp's and llama.cpp's
//! cache, or as F32 for a float-exact reference mode.

use bitnet_kernels::attention::KvData;
use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::config::ModelConfig;
use crate::error::ModelError;

/// The element type of the cache, which also selects the attention arithmetic:
/// - `F16` (default): bitnet.cpp's conventions — K/V stored F16, Q rounded to F16 for `q·k`,
///   and on one-token calls the probabilities and the LM-head input rounded to F16;
/// - `F32`: everything in f32 (no F16 rounding anywhere), twice the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvPrecision {
    #[default]
    F16,
    F32,
}

#[derive(Debug, Clone)]
enum Store {
    F16 {
        keys: Vec<Vec<f16>>,
        values: Vec<Vec<f16>>,
    },
    F32 {
        keys: Vec<Vec<f32>>,
        values: Vec<Vec<f32>>,
    },
}

/// Keys and values of every layer for positions `0..len()`.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_layer: usize,
    kv_dim: usize,
    capacity: usize,
    len: usize,
    store: Store,
}

impl KvCache {
    /// An empty F16 cache for `capacity` positions of a model with this configuration.
    pub fn new(config: &ModelConfig, capacity: usize) -> Self {
        Self::with_precision(config, capacity, KvPrecision::F16)
    }

    /// An empty cache of the given element type.
    pub fn with_precision(config: &ModelConfig, capacity: usize, precision: KvPrecision) -> Self {
        let kv_dim = config.kv_dim();
        let n = capacity * kv_dim;
        let store = match precision {
            KvPrecision::F16 => Store::F16 {
                keys: vec![vec![f16::ZERO; n]; config.n_layer],
                values: vec![vec![f16::ZERO; n]; config.n_layer],
            },
            KvPrecision::F32 => Store::F32 {
                keys: vec![vec![0.0; n]; config.n_layer],
                values: vec![vec![0.0; n]; config.n_layer],
            },
        };
        KvCache {
            n_layer: config.n_layer,
            kv_dim,
            capacity,
            len: 0,
            store,
        }
    }

    /// The element type.
    pub fn precision(&self) -> KvPrecision {
        match self.store {
            Store::F16 { .. } => KvPrecision::F16,
            Store::F32 { .. } => KvPrecision::F32,
        }
    }

    /// Number of positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position (the memory is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops positions `len..`, keeping the first `len` (for re-using a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn check_shape(&self, config: &ModelConfig) -> Result<(), ModelError> {
        if self.n_layer != config.n_layer || self.kv_dim != config.kv_dim() {
            return Err(ModelError::CacheMismatch);
        }
        Ok(())
    }

    pub(crate) fn ensure_room(&self, n: usize) -> Result<(), ModelError> {
        if self.len + n > self.capacity {
            return Err(ModelError::ContextFull {
                needed: self.len + n,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Stores `k` and `v` (`n` rows each) of layer `il` at positions `len..len + n`.
    pub(crate) fn store(&mut self, il: usize, k: &[f32], v: &[f32]) {
        let start = self.len * self.kv_dim;
        let end = start + k.len();
        match &mut self.store {
            Store::F16 { keys, values } => {
                keys[il][start..end].convert_from_f32_slice(k);
                values[il][start..end].convert_from_f32_slice(v);
            }
            Store::F32 { keys, values } => {
                keys[il][start..end].copy_from_slice(k);
                values[il][start..end].copy_from_slice(v);
            }
        }
    }

    /// Layer `il`'s stored keys and values (every position the cache holds; rows `kv_dim`
    /// wide), as the attention kernels read them.
    pub(crate) fn layer(&self, il: usize) -> (KvData<'_>, KvData<'_>) {
        match &self.store {
            Store::F16 { keys, values } => (KvData::F16(&keys[il]), KvData::F16(&values[il])),
            Store::F32 { keys, values } => (KvData::F32(&keys[il]), KvData::F32(&values[il])),
        }
    }

    /// Marks `n` more positions as filled (after every layer stored them).
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
