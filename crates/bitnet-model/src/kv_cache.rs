//! The preallocated key/value cache: per layer, `capacity` positions of K and V rows
//! (`n_head_kv · head_dim` wide), stored as F16 by default like bitnet.cpp's and llama.cpp's
//! cache, as BF16 or Q8_0 (llama.cpp's `--cache-type-k/v`; Q8_0 takes 34 bytes per 32 values,
//! about half of F16), or as F32 for a float-exact reference mode. Snapshots of a cache's first
//! positions can be taken and put back (prompt caching across requests).

use bitnet_kernels::attention::KvData;
use bitnet_kernels::q8::{quantize_q8_0, Q8_BLOCK};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::config::ModelConfig;
use crate::error::ModelError;

/// The element type of the cache, which also selects the attention arithmetic:
/// - `F16` (default), `Bf16` and `Q8_0`: bitnet.cpp's conventions — Q rounded to F16 for `q·k`,
///   and on one-token calls the probabilities and the LM-head input rounded to F16; only the
///   storage of K and V differs;
/// - `F32`: everything in f32 (no F16 rounding anywhere), twice the memory of F16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvPrecision {
    #[default]
    F16,
    Bf16,
    Q8_0,
    F32,
}

impl KvPrecision {
    /// Every element type, as `--cache-type` names them.
    pub const ALL: [KvPrecision; 4] = [
        KvPrecision::F16,
        KvPrecision::Bf16,
        KvPrecision::Q8_0,
        KvPrecision::F32,
    ];

    /// The name used by `--cache-type` (llama.cpp's).
    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::F16 => "f16",
            KvPrecision::Bf16 => "bf16",
            KvPrecision::Q8_0 => "q8_0",
            KvPrecision::F32 => "f32",
        }
    }

    /// Parses a `--cache-type` value.
    pub fn from_name(name: &str) -> Option<KvPrecision> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether a model with this configuration can hold its cache in this type (Q8_0 needs
    /// head dims that are whole 32-value blocks).
    pub fn check(self, config: &ModelConfig) -> Result<(), ModelError> {
        if self == KvPrecision::Q8_0 && !config.head_dim.is_multiple_of(Q8_BLOCK) {
            return Err(ModelError::CacheType {
                cache_type: self.name(),
                reason: format!(
                    "the head dimension {} is not a multiple of {Q8_BLOCK}",
                    config.head_dim
                ),
            });
        }
        Ok(())
    }

    /// Bytes one cache of `capacity` positions takes for a model with this configuration.
    pub fn cache_bytes(self, config: &ModelConfig, capacity: usize) -> usize {
        let values = 2 * config.n_layer * capacity * config.kv_dim();
        match self {
            KvPrecision::F16 | KvPrecision::Bf16 => values * 2,
            KvPrecision::Q8_0 => values + values / Q8_BLOCK * 2,
            KvPrecision::F32 => values * 4,
        }
    }
}

/// Keys and values of every layer, `T` per element.
#[derive(Debug, Clone)]
struct Layers<T> {
    keys: Vec<Vec<T>>,
    values: Vec<Vec<T>>,
}

impl<T: Copy> Layers<T> {
    fn new(n_layer: usize, n: usize, zero: T) -> Self {
        Layers {
            keys: vec![vec![zero; n]; n_layer],
            values: vec![vec![zero; n]; n_layer],
        }
    }

    /// A copy of the first `n` elements of every layer.
    fn head(&self, n: usize) -> Self {
        let head = |layers: &[Vec<T>]| layers.iter().map(|l| l[..n].to_vec()).collect();
        Layers {
            keys: head(&self.keys),
            values: head(&self.values),
        }
    }

    /// Copies the first `n` elements of every layer of `from`.
    fn copy_from(&mut self, from: &Layers<T>, n: usize) {
        let pairs = self.keys.iter_mut().zip(&from.keys);
        for (dst, src) in pairs.chain(self.values.iter_mut().zip(&from.values)) {
            dst[..n].copy_from_slice(&src[..n]);
        }
    }

    fn bytes(&self) -> usize {
        let elements: usize = self.keys.iter().chain(&self.values).map(Vec::len).sum();
        elements * std::mem::size_of::<T>()
    }
}

/// The storage of a cache or a snapshot.
#[derive(Debug, Clone)]
enum Store {
    F16(Layers<f16>),
    Bf16(Layers<bf16>),
    F32(Layers<f32>),
    /// Codes and one F16 scale per 32 codes.
    Q8_0 {
        codes: Layers<i8>,
        scales: Layers<f16>,
    },
}

impl Store {
    fn new(precision: KvPrecision, n_layer: usize, n: usize) -> Self {
        match precision {
            KvPrecision::F16 => Store::F16(Layers::new(n_layer, n, f16::ZERO)),
            KvPrecision::Bf16 => Store::Bf16(Layers::new(n_layer, n, bf16::ZERO)),
            KvPrecision::F32 => Store::F32(Layers::new(n_layer, n, 0.0)),
            KvPrecision::Q8_0 => Store::Q8_0 {
                codes: Layers::new(n_layer, n, 0),
                scales: Layers::new(n_layer, n / Q8_BLOCK, f16::ZERO),
            },
        }
    }

    fn precision(&self) -> KvPrecision {
        match self {
            Store::F16(_) => KvPrecision::F16,
            Store::Bf16(_) => KvPrecision::Bf16,
            Store::F32(_) => KvPrecision::F32,
            Store::Q8_0 { .. } => KvPrecision::Q8_0,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Store::F16(l) => l.bytes(),
            Store::Bf16(l) => l.bytes(),
            Store::F32(l) => l.bytes(),
            Store::Q8_0 { codes, scales } => codes.bytes() + scales.bytes(),
        }
    }

    /// A copy of the first `n` values of every layer (`n` a multiple of the row width).
    fn head(&self, n: usize) -> Store {
        match self {
            Store::F16(l) => Store::F16(l.head(n)),
            Store::Bf16(l) => Store::Bf16(l.head(n)),
            Store::F32(l) => Store::F32(l.head(n)),
            Store::Q8_0 { codes, scales } => Store::Q8_0 {
                codes: codes.head(n),
                scales: scales.head(n / Q8_BLOCK),
            },
        }
    }

    /// Copies the first `n` values of every layer of `from`, of the same type.
    fn copy_from(&mut self, from: &Store, n: usize) -> Result<(), ModelError> {
        match (self, from) {
            (Store::F16(a), Store::F16(b)) => a.copy_from(b, n),
            (Store::Bf16(a), Store::Bf16(b)) => a.copy_from(b, n),
            (Store::F32(a), Store::F32(b)) => a.copy_from(b, n),
            (
                Store::Q8_0 { codes, scales },
                Store::Q8_0 {
                    codes: c,
                    scales: s,
                },
            ) => {
                codes.copy_from(c, n);
                scales.copy_from(s, n / Q8_BLOCK);
            }
            _ => return Err(ModelError::CacheMismatch),
        }
        Ok(())
    }
}

/// A copy of the first positions of a [`KvCache`] (see [`KvCache::snapshot`]).
#[derive(Debug, Clone)]
pub struct KvSnapshot {
    n_layer: usize,
    kv_dim: usize,
    len: usize,
    store: Store,
}

impl KvSnapshot {
    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element type.
    pub fn precision(&self) -> KvPrecision {
        self.store.precision()
    }

    /// Bytes of memory the snapshot's keys and values take.
    pub fn memory_bytes(&self) -> usize {
        self.store.bytes()
    }
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
        Self::build(config, capacity, KvPrecision::F16)
    }

    /// An empty cache of the given element type (refused when the model's shape does not
    /// allow it, see [`KvPrecision::check`]).
    pub fn with_precision(
        config: &ModelConfig,
        capacity: usize,
        precision: KvPrecision,
    ) -> Result<Self, ModelError> {
        precision.check(config)?;
        Ok(Self::build(config, capacity, precision))
    }

    /// An empty cache of an element type already checked for this configuration.
    pub(crate) fn build(config: &ModelConfig, capacity: usize, precision: KvPrecision) -> Self {
        let kv_dim = config.kv_dim();
        KvCache {
            n_layer: config.n_layer,
            kv_dim,
            capacity,
            len: 0,
            store: Store::new(precision, config.n_layer, capacity * kv_dim),
        }
    }

    /// The element type.
    pub fn precision(&self) -> KvPrecision {
        self.store.precision()
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
            Store::F16(l) => {
                l.keys[il][start..end].convert_from_f32_slice(k);
                l.values[il][start..end].convert_from_f32_slice(v);
            }
            Store::Bf16(l) => {
                l.keys[il][start..end].convert_from_f32_slice(k);
                l.values[il][start..end].convert_from_f32_slice(v);
            }
            Store::F32(l) => {
                l.keys[il][start..end].copy_from_slice(k);
                l.values[il][start..end].copy_from_slice(v);
            }
            Store::Q8_0 { codes, scales } => {
                let blocks = start / Q8_BLOCK..end / Q8_BLOCK;
                for (x, codes, scales) in [
                    (k, &mut codes.keys[il], &mut scales.keys[il]),
                    (v, &mut codes.values[il], &mut scales.values[il]),
                ] {
                    // The row width is whole blocks (KvPrecision::check at construction), so
                    // the lengths always agree.
                    quantize_q8_0(x, &mut codes[start..end], &mut scales[blocks.clone()])
                        .expect("Q8_0 cache rows are whole blocks");
                }
            }
        }
    }

    /// Layer `il`'s stored keys and values (every position the cache holds; rows `kv_dim`
    /// wide), as the attention kernels read them.
    pub(crate) fn layer(&self, il: usize) -> (KvData<'_>, KvData<'_>) {
        match &self.store {
            Store::F16(l) => (KvData::F16(&l.keys[il]), KvData::F16(&l.values[il])),
            Store::Bf16(l) => (KvData::Bf16(&l.keys[il]), KvData::Bf16(&l.values[il])),
            Store::F32(l) => (KvData::F32(&l.keys[il]), KvData::F32(&l.values[il])),
            Store::Q8_0 { codes, scales } => (
                KvData::Q8_0 {
                    codes: &codes.keys[il],
                    scales: &scales.keys[il],
                },
                KvData::Q8_0 {
                    codes: &codes.values[il],
                    scales: &scales.values[il],
                },
            ),
        }
    }

    /// A copy of positions `0..len` (at most [`KvCache::len`]) of every layer, holding only
    /// those positions' memory, to be put back into a cache of the same model with
    /// [`KvCache::restore`].
    pub fn snapshot(&self, len: usize) -> KvSnapshot {
        let len = len.min(self.len);
        KvSnapshot {
            n_layer: self.n_layer,
            kv_dim: self.kv_dim,
            len,
            store: self.store.head(len * self.kv_dim),
        }
    }

    /// Replaces the cache's content with `snapshot`'s positions. The snapshot must come from a
    /// cache of the same shape and element type, and fit.
    pub fn restore(&mut self, snapshot: &KvSnapshot) -> Result<(), ModelError> {
        let (n_layer, kv_dim) = (snapshot.n_layer, snapshot.kv_dim);
        self.replace_with(n_layer, kv_dim, &snapshot.store, snapshot.len)
    }

    /// Replaces the cache's content with positions `0..len` (at most `from.len()`) of `from`,
    /// a cache of the same shape and element type: [`KvCache::snapshot`] then
    /// [`KvCache::restore`] without the copy in between.
    pub fn copy_prefix(&mut self, from: &KvCache, len: usize) -> Result<(), ModelError> {
        let len = len.min(from.len);
        self.replace_with(from.n_layer, from.kv_dim, &from.store, len)
    }

    /// Replaces the content with the first `len` positions of `store`, the store of a cache
    /// or snapshot shaped `n_layer` × `kv_dim`.
    fn replace_with(
        &mut self,
        n_layer: usize,
        kv_dim: usize,
        store: &Store,
        len: usize,
    ) -> Result<(), ModelError> {
        if n_layer != self.n_layer || kv_dim != self.kv_dim {
            return Err(ModelError::CacheMismatch);
        }
        if len > self.capacity {
            return Err(ModelError::ContextFull {
                needed: len,
                capacity: self.capacity,
            });
        }
        self.store.copy_from(store, len * self.kv_dim)?;
        self.len = len;
        Ok(())
    }

    /// Bytes of memory the cache's keys and values take (every position of its capacity).
    pub fn memory_bytes(&self) -> usize {
        self.store.bytes()
    }

    /// Marks `n` more positions as filled (after every layer stored them).
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
