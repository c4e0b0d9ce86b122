//! The GGUF reader: `GgufFile` over a memory map (or an owned buffer), parsing and validating
//! the header, the metadata, the tensor table and the placement of every tensor's data.
//!
//! Nothing is allocated on the strength of a count the file merely claims: every count is
//! checked against the bytes that remain before a `Vec` is reserved for it.

use std::collections::HashMap;
use std::path::Path;

use crate::error::GgufError;
use crate::metadata::{MetadataValue, ValueType};
use crate::resolve::{resolve_tensor_type, Dialects, Extent};
use crate::types::GgmlType;

/// The default data alignment when the file has no `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;
/// The deepest nesting of arrays inside arrays the reader accepts.
pub const MAX_ARRAY_DEPTH: usize = 8;

const MAGIC: &[u8; 4] = b"GGUF";

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Shape, ne0 (the contiguous dimension) first, as stored.
    pub dims: Vec<u64>,
    /// The type, with ids 36..=39 resolved (see `crate::resolve`).
    pub ggml_type: GgmlType,
    /// The type id as on disk.
    pub type_id: u32,
    /// Offset of the data, relative to the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    /// Exact size of the data.
    pub n_bytes: u64,
}

/// The bytes of the file: a read-only memory map or an owned buffer.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed, validated GGUF file. Tensor data stays in the file's bytes (mapped or owned) and
/// is handed out as slices.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

// A loaded file is shared between threads (model weights, tokenizer).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<GgufFile>();
};

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Maps the file read-only and parses it.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let map = map_read_only(&file).map_err(io)?;
        Self::parse(Storage::Mapped(map))
    }

    /// Parses a GGUF image held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::parse(Storage::Owned(bytes))
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// An integer value of any type, if >= 0.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// An integer value of any type, if it fits an i64.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    /// An f32 or f64 value (as f32).
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Option<&[MetadataValue]> {
        self.get(key)?.as_array()
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data of a tensor of this file: exactly `t.n_bytes` bytes. (A `TensorInfo` that does
    /// not lie inside this file's data section gets an empty slice.)
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_offset.saturating_add(t.offset);
        let end = start.saturating_add(t.n_bytes);
        match (usize::try_from(start), usize::try_from(end)) {
            (Ok(s), Ok(e)) => self.storage.bytes().get(s..e).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Maps a tensor's bytes into this process in one request (`MADV_POPULATE_READ` where the
    /// OS has it), instead of one page fault per 4 KiB page as they are first read. A loader about
    /// to read the whole tensor calls this first. A no-op for in-memory files; failures are
    /// ignored (it is advice: the reads fault the pages in anyway).
    pub fn prefetch_tensor_pages(&self, t: &TensorInfo) {
        if let Storage::Mapped(map) = &self.storage {
            if let Some((start, len)) = self.mapped_range(map, t) {
                #[cfg(target_os = "linux")]
                let _ = map.advise_range(memmap2::Advice::PopulateRead, start, len);
                #[cfg(not(target_os = "linux"))]
                let _ = (start, len);
            }
        }
    }

    /// The in-map byte range of a tensor's data, if non-empty.
    fn mapped_range(&self, map: &memmap2::Mmap, t: &TensorInfo) -> Option<(usize, usize)> {
        let start = self.data_offset.saturating_add(t.offset);
        let end = start.saturating_add(t.n_bytes).min(map.len() as u64);
        let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
        (start < end).then_some((start, end - start))
    }

    /// Tells the OS this process is done with a tensor's mapped bytes, so the pages leave its
    /// resident set (the page cache keeps them; touching the bytes again re-reads them). A loader
    /// that copies or repacks every tensor calls this as it goes, so the mapped file and the
    /// loaded weights are not both resident. A no-op for in-memory files; failures are ignored
    /// (it is advice).
    pub fn release_tensor_pages(&self, t: &TensorInfo) {
        self.release_tensor_bytes(t, 0..usize::MAX);
    }

    /// [`GgufFile::release_tensor_pages`] for the bytes `range` of a tensor's data only (the
    /// pages wholly inside it): a loader copying a large tensor piece by piece releases each
    /// piece once copied, so the tensor is never resident twice.
    pub fn release_tensor_bytes(&self, t: &TensorInfo, range: std::ops::Range<usize>) {
        const PAGE: usize = 4096;
        if let Storage::Mapped(map) = &self.storage {
            if let Some((start, len)) = self.mapped_range(map, t) {
                let from = (start + range.start.min(len)).next_multiple_of(PAGE);
                let to = start + range.end.min(len);
                let to = if to == start + len {
                    to
                } else {
                    to - to % PAGE
                };
                if from < to {
                    release_mapped_range(map, from, to - from);
                }
            }
        }
    }

    /// File offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    fn parse(storage: Storage) -> Result<GgufFile, GgufError> {
        let parsed = Parsed::parse(storage.bytes())?;
        Ok(GgufFile {
            version: parsed.version,
            key_index: index_by_name(&parsed.metadata, |(k, _)| k),
            tensor_index: index_by_name(&parsed.tensors, |t| &t.name),
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            storage,
        })
    }
}

/// Maps a file read-only. With [`release_mapped_range`], the only `unsafe` of the workspace
/// outside the kernels: every crate that maps a file (GGUF, safetensors checkpoints) goes
/// through here.
#[allow(unsafe_code)]
pub fn map_read_only(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process; the GGUF files this engine
    // opens are model files that nobody rewrites while they are loaded. (If another process
    // truncated the file the OS would fault on access; this is the usual contract of
    // memory-mapped model loading, as in llama.cpp.)
    unsafe { memmap2::Mmap::map(file) }
}

/// Drops the resident pages of `map[offset..offset + len]` (`MADV_DONTNEED`).
#[allow(unsafe_code)]
fn release_mapped_range(map: &memmap2::Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: `map` is a read-only mapping of a file that is never written through it, so
    // discarding its pages loses nothing: the next access reads the same bytes back from the
    // file. The range is within the map (checked by the caller).
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    #[cfg(not(unix))]
    let _ = (map, offset, len);
}

fn index_by_name<T>(items: &[T], name: impl Fn(&T) -> &String) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (name(item).clone(), i))
        .collect()
}

/// A read position in the file; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A read that ran past the end: where, and how much was wanted.
struct Short {
    offset: u64,
    needed: u64,
    available: u64,
}

impl Short {
    fn into_error(self, what: impl Into<String>) -> GgufError {
        GgufError::Truncated {
            what: what.into(),
            offset: self.offset,
            needed: self.needed,
            available: self.available,
        }
    }
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Short> {
        let short = Short {
            offset: self.pos as u64,
            needed: n,
            available: self.remaining() as u64,
        };
        let n = match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => n,
            _ => return Err(short),
        };
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let bytes = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, Short> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Short> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed string's bytes.
    fn string_bytes(&mut self) -> Result<&'a [u8], Short> {
        let len = self.u64()?;
        self.take(len)
    }

    /// Fails with `CountTooLarge` unless `count` items of at least `min_size` bytes each fit in
    /// what remains; returns the count as a `usize` safe to reserve.
    fn check_count(
        &self,
        count: u64,
        min_size: usize,
        what: impl FnOnce() -> String,
        at: u64,
    ) -> Result<usize, GgufError> {
        let available = self.remaining() as u64;
        let max = available / min_size.max(1) as u64;
        if count > max {
            return Err(GgufError::CountTooLarge {
                what: what(),
                offset: at,
                count,
                available,
                max,
            });
        }
        Ok(count as usize)
    }
}

struct Parsed {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
}

/// A tensor-table entry before its type is resolved.
struct RawTensor {
    name: String,
    info_offset: u64,
    dims: Vec<u64>,
    n_elements: u64,
    type_id: u32,
    offset: u64,
}

/// Smallest tensor-info record: 8-byte name length, n_dims, type, offset.
const MIN_TENSOR_INFO: usize = 8 + 4 + 4 + 8;
/// Smallest key/value record: 8-byte key length, type, one byte of value.
const MIN_KV: usize = 8 + 4 + 1;

impl Parsed {
    fn parse(buf: &[u8]) -> Result<Parsed, GgufError> {
        let mut cur = Cursor { buf, pos: 0 };
        let magic = cur.take(4).map_err(|s| s.into_error("magic"))?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = cur.u32().map_err(|s| s.into_error("version"))?;
        match version {
            2 | 3 => {}
            v if matches!(v.swap_bytes(), 2 | 3) => {
                return Err(GgufError::BigEndian {
                    version: v.swap_bytes(),
                })
            }
            v => return Err(GgufError::UnsupportedVersion { version: v }),
        }
        let tensor_count_at = cur.offset();
        let tensor_count = cur.u64().map_err(|s| s.into_error("tensor count"))?;
        let kv_count_at = cur.offset();
        let kv_count = cur
            .u64()
            .map_err(|s| s.into_error("metadata key/value count"))?;

        let n_kv = cur.check_count(
            kv_count,
            MIN_KV,
            || "metadata key/value count".into(),
            kv_count_at,
        )?;
        let (metadata, key_offsets) = read_metadata(&mut cur, n_kv)?;

        // Tensor infos must fit after the metadata.
        let n_tensors = cur.check_count(
            tensor_count,
            MIN_TENSOR_INFO,
            || "tensor count".into(),
            tensor_count_at,
        )?;
        let raw_tensors = read_tensor_infos(&mut cur, n_tensors)?;

        let alignment = alignment_of(&metadata, &key_offsets)?;
        let data_offset = cur.offset().next_multiple_of(alignment);
        let data_len = (buf.len() as u64).saturating_sub(data_offset);
        let arch = metadata
            .iter()
            .find(|(k, _)| k == "general.architecture")
            .and_then(|(_, v)| v.as_str());
        let tensors = place_tensors(
            raw_tensors,
            Dialects::for_architecture(arch),
            alignment,
            data_offset,
            data_len,
        )?;
        Ok(Parsed {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }
}

/// The metadata in file order, and the file offset of each entry.
type MetadataWithOffsets = (Vec<(String, MetadataValue)>, Vec<u64>);

fn read_metadata(cur: &mut Cursor<'_>, n_kv: usize) -> Result<MetadataWithOffsets, GgufError> {
    let mut metadata = Vec::with_capacity(n_kv);
    let mut offsets = Vec::with_capacity(n_kv);
    let mut seen: HashMap<String, ()> = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let at = cur.offset();
        let key_bytes = cur
            .string_bytes()
            .map_err(|s| s.into_error(format!("key of metadata entry {i}")))?;
        let key = std::str::from_utf8(key_bytes)
            .map_err(|_| GgufError::InvalidUtf8 {
                what: format!("key of metadata entry {i}"),
                offset: at,
            })?
            .to_owned();
        let type_at = cur.offset();
        let type_id = cur
            .u32()
            .map_err(|s| s.into_error(format!("value type of key {key:?}")))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.clone(),
            type_id,
            offset: type_at,
        })?;
        let value = read_value(cur, ty, &key, 0)?;
        if seen.insert(key.clone(), ()).is_some() {
            return Err(GgufError::DuplicateKey { key, offset: at });
        }
        metadata.push((key, value));
        offsets.push(at);
    }
    Ok((metadata, offsets))
}

fn read_value(
    cur: &mut Cursor<'_>,
    ty: ValueType,
    key: &str,
    depth: usize,
) -> Result<MetadataValue, GgufError> {
    let at = cur.offset();
    let short = |s: Short| s.into_error(format!("value of key {key:?}"));
    Ok(match ty {
        ValueType::String => {
            let bytes = cur.string_bytes().map_err(short)?;
            MetadataValue::String(utf8(bytes, key, at)?)
        }
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep {
                    key: key.to_owned(),
                    offset: at,
                    max_depth: MAX_ARRAY_DEPTH,
                });
            }
            let elem_id = cur.u32().map_err(short)?;
            let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
                key: key.to_owned(),
                type_id: elem_id,
                offset: at,
            })?;
            let len_at = cur.offset();
            let len = cur.u64().map_err(short)?;
            let n = cur.check_count(
                len,
                elem.min_encoded_size(),
                || format!("array of key {key:?}"),
                len_at,
            )?;
            MetadataValue::Array(read_array(cur, elem, n, key, depth)?)
        }
        scalar => {
            let size = scalar.scalar_size().unwrap_or(1) as u64;
            scalar_from_le(scalar, cur.take(size).map_err(short)?)
        }
    })
}

/// Reads `n` elements of one type. Scalars are decoded from one contiguous slice and strings
/// in a tight loop: a 262k-entry vocabulary costs one allocation per string and nothing else.
fn read_array(
    cur: &mut Cursor<'_>,
    elem: ValueType,
    n: usize,
    key: &str,
    depth: usize,
) -> Result<Vec<MetadataValue>, GgufError> {
    if let Some(size) = elem.scalar_size() {
        let bytes = cur
            .take((n * size) as u64)
            .map_err(|s| s.into_error(format!("array of key {key:?}")))?;
        return Ok(bytes
            .chunks_exact(size)
            .map(|c| scalar_from_le(elem, c))
            .collect());
    }
    let mut out = Vec::with_capacity(n);
    if elem == ValueType::String {
        for i in 0..n {
            let at = cur.offset();
            let bytes = cur
                .string_bytes()
                .map_err(|s| s.into_error(format!("element {i} of array {key:?}")))?;
            out.push(MetadataValue::String(utf8(bytes, key, at)?));
        }
    } else {
        for _ in 0..n {
            out.push(read_value(cur, elem, key, depth + 1)?);
        }
    }
    Ok(out)
}

fn utf8(bytes: &[u8], key: &str, at: u64) -> Result<String, GgufError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(GgufError::InvalidUtf8 {
            what: format!("string value of key {key:?}"),
            offset: at,
        }),
    }
}

/// Decodes a little-endian scalar from exactly `scalar_size` bytes.
fn scalar_from_le(ty: ValueType, b: &[u8]) -> MetadataValue {
    let a2 = |b: &[u8]| [b[0], b[1]];
    let a4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let a8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    match ty {
        ValueType::U8 => MetadataValue::U8(b[0]),
        ValueType::I8 => MetadataValue::I8(b[0] as i8),
        ValueType::Bool => MetadataValue::Bool(b[0] != 0),
        ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(a2(b))),
        ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(a2(b))),
        ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(a4(b))),
        ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(a4(b))),
        ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(a4(b))),
        ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(a8(b))),
        ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(a8(b))),
        ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(a8(b))),
        // Callers only pass scalar types.
        ValueType::String | ValueType::Array => MetadataValue::Array(Vec::new()),
    }
}

fn read_tensor_infos(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<RawTensor>, GgufError> {
    let mut out = Vec::with_capacity(n);
    let mut seen: HashMap<String, ()> = HashMap::with_capacity(n);
    for i in 0..n {
        let at = cur.offset();
        let name_bytes = cur
            .string_bytes()
            .map_err(|s| s.into_error(format!("name of tensor {i}")))?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| GgufError::InvalidUtf8 {
                what: format!("name of tensor {i}"),
                offset: at,
            })?
            .to_owned();
        let short = |s: Short| s.into_error(format!("info of tensor {name:?}"));
        let n_dims = cur.u32().map_err(short)?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                offset: at,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64().map_err(short)?);
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64 && dims.iter().all(|&d| d <= i64::MAX as u64))
            .ok_or_else(|| GgufError::ElementCountOverflow {
                tensor: name.clone(),
                offset: at,
                dims: dims.clone(),
            })?;
        let type_id = cur.u32().map_err(short)?;
        let offset = cur.u64().map_err(short)?;
        if seen.insert(name.clone(), ()).is_some() {
            return Err(GgufError::DuplicateTensor { name, offset: at });
        }
        out.push(RawTensor {
            name,
            info_offset: at,
            dims,
            n_elements,
            type_id,
            offset,
        });
    }
    Ok(out)
}

/// `general.alignment`: a UINT32, non-zero power of two (as ggml and gguf-py require).
fn alignment_of(
    metadata: &[(String, MetadataValue)],
    key_offsets: &[u64],
) -> Result<u64, GgufError> {
    let Some(i) = metadata.iter().position(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let value = &metadata[i].1;
    let bad = |reason: String| GgufError::BadAlignment {
        offset: key_offsets[i],
        reason,
    };
    match value {
        MetadataValue::U32(a) if a.is_power_of_two() => Ok(u64::from(*a)),
        MetadataValue::U32(a) => Err(bad(format!("{a} is not a non-zero power of two"))),
        other => Err(bad(format!("must be UINT32, found {}", other.type_name()))),
    }
}

/// Resolves every tensor's type and checks where its data lies: aligned, inside the data
/// section, not overlapping another tensor.
fn place_tensors(
    raw: Vec<RawTensor>,
    dialects: Dialects,
    alignment: u64,
    data_start: u64,
    data_len: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
    for t in &raw {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.info_offset,
                data_offset: t.offset,
                alignment,
            });
        }
    }
    // Order by data offset: each tensor's extent runs to the next tensor's start (or the end).
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by_key(|&i| (raw[i].offset, i));
    let mut extents = vec![0u64; raw.len()];
    for (pos, &i) in order.iter().enumerate() {
        let end = order
            .get(pos + 1)
            .map_or(data_len, |&j| raw[j].offset.min(data_len));
        extents[i] = end.saturating_sub(raw[i].offset);
    }
    let mut tensors = Vec::with_capacity(raw.len());
    for (t, extent) in raw.into_iter().zip(extents) {
        let (ggml_type, n_bytes) = resolve_tensor_type(
            &t.name,
            t.info_offset,
            t.type_id,
            t.n_elements,
            &t.dims,
            dialects,
            Extent {
                bytes: extent,
                alignment,
            },
        )?;
        let end = t.offset.checked_add(n_bytes);
        if end.is_none_or(|e| e > data_len) {
            return Err(GgufError::TensorPastEnd {
                tensor: t.name,
                offset: t.info_offset,
                data_offset: t.offset,
                n_bytes,
                data_len,
                data_start,
            });
        }
        tensors.push(TensorInfo {
            name: t.name,
            dims: t.dims,
            ggml_type,
            type_id: t.type_id,
            offset: t.offset,
            n_elements: t.n_elements,
            n_bytes,
        });
    }
    // In offset order, each non-empty tensor must start at or after the furthest end so far.
    let mut furthest: Option<&TensorInfo> = None;
    for &i in &order {
        let b = &tensors[i];
        if b.n_bytes == 0 {
            continue;
        }
        if let Some(a) = furthest {
            if b.offset < a.offset + a.n_bytes {
                return Err(GgufError::TensorOverlap {
                    tensor: b.name.clone(),
                    data_offset: b.offset,
                    n_bytes: b.n_bytes,
                    other: a.name.clone(),
                    other_offset: a.offset,
                });
            }
        }
        if furthest.is_none_or(|a| b.offset + b.n_bytes > a.offset + a.n_bytes) {
            furthest = Some(b);
        }
    }
    Ok(tensors)
}
