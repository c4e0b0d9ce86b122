//! `GgufWriter`: builds a GGUF v3 file from metadata and raw tensor bytes, laid out the way
//! PyPI `gguf` (`GGUFWriter`) lays it out: header, key/values in insertion order, tensor infos
//! with offsets rounded up to the alignment, zero padding to the alignment, then each tensor's
//! bytes followed by zero padding to the alignment.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use crate::error::GgufError;
use crate::metadata::{MetadataValue, ValueType};
use crate::reader::{GgufFile, DEFAULT_ALIGNMENT, MAX_DIMS};
use crate::types::GgmlType;

struct PendingTensor<'a> {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    bytes: Cow<'a, [u8]>,
}

/// Collects metadata and tensors, then writes them out. Nothing is checked until
/// [`GgufWriter::write_to`]: duplicate keys or tensor names, mixed-type arrays, a bad
/// `general.alignment` and tensor bytes whose length does not match the type and shape are
/// errors there.
#[derive(Default)]
pub struct GgufWriter<'a> {
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<PendingTensor<'a>>,
}

impl<'a> GgufWriter<'a> {
    /// An empty writer (GGUF v3, alignment 32 unless `general.alignment` is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer holding all of `file`'s metadata and tensors (borrowing the tensor bytes).
    pub fn from_file(file: &'a GgufFile) -> Self {
        let mut w = Self::new();
        for (k, v) in file.metadata() {
            w.add_metadata(k.clone(), v.clone());
        }
        for t in file.tensors() {
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, file.tensor_data(t));
        }
        w
    }

    /// Appends a key/value (file order = insertion order).
    pub fn add_metadata(&mut self, key: impl Into<String>, value: MetadataValue) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    /// Appends a tensor: `dims` ne0 first, `bytes` exactly the type's size for that shape.
    /// The on-disk type id is `ggml_type.id()` (`BitNet32F16` is stored as 36).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        bytes: impl Into<Cow<'a, [u8]>>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type,
            bytes: bytes.into(),
        });
        self
    }

    /// Writes the file; returns the number of bytes written.
    pub fn write_to<W: Write>(&self, out: W) -> Result<u64, GgufError> {
        let alignment = self.validate()?;
        let mut out = Counting { inner: out, n: 0 };
        let w = &mut out;
        put(w, b"GGUF")?;
        put(w, &3u32.to_le_bytes())?;
        put(w, &(self.tensors.len() as u64).to_le_bytes())?;
        put(w, &(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            put_string(w, key)?;
            put(w, &value.value_type().id().to_le_bytes())?;
            put_value(w, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(w, &t.name)?;
            put(w, &(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                put(w, &d.to_le_bytes())?;
            }
            put(w, &t.ggml_type.id().to_le_bytes())?;
            put(w, &offset.to_le_bytes())?;
            offset += (t.bytes.len() as u64).next_multiple_of(alignment);
        }
        pad(w, alignment)?;
        for t in &self.tensors {
            put(w, &t.bytes)?;
            pad(w, alignment)?;
        }
        w.inner.flush().map_err(GgufError::Write)?;
        Ok(w.n)
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<u64, GgufError> {
        let path = path.as_ref();
        let file = std::fs::File::create(path).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.write_to(std::io::BufWriter::new(file))
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Checks everything `write_to` relies on; returns the alignment.
    fn validate(&self) -> Result<u64, GgufError> {
        let mut keys = HashSet::new();
        let mut alignment = DEFAULT_ALIGNMENT;
        for (key, value) in &self.metadata {
            let invalid = |reason: String| GgufError::InvalidMetadata {
                key: key.clone(),
                reason,
            };
            if !keys.insert(key.as_str()) {
                return Err(invalid("added twice".into()));
            }
            check_homogeneous(value).map_err(invalid)?;
            if key == "general.alignment" {
                alignment = match value {
                    MetadataValue::U32(a) if a.is_power_of_two() => u64::from(*a),
                    _ => return Err(invalid("must be a UINT32 non-zero power of two".into())),
                };
            }
        }
        let mut names = HashSet::new();
        for t in &self.tensors {
            let invalid = |reason: String| GgufError::InvalidTensor {
                tensor: t.name.clone(),
                reason,
            };
            if !names.insert(t.name.as_str()) {
                return Err(invalid("added twice".into()));
            }
            if t.dims.len() > MAX_DIMS as usize {
                return Err(invalid(format!("{} dims (at most 4)", t.dims.len())));
            }
            let n_elements = t
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| invalid(format!("element count of {:?} overflows", t.dims)))?;
            let expected = t
                .ggml_type
                .tensor_bytes(n_elements, &t.dims)
                .map_err(|e| invalid(e.to_string()))?;
            if expected != t.bytes.len() as u64 {
                return Err(invalid(format!(
                    "{} bytes given, {} {:?} needs {expected}",
                    t.bytes.len(),
                    t.ggml_type,
                    t.dims
                )));
            }
        }
        Ok(alignment)
    }
}

/// Arrays must hold one type; nested arrays may differ from each other.
fn check_homogeneous(value: &MetadataValue) -> Result<(), String> {
    let Some(items) = value.as_array() else {
        return Ok(());
    };
    if let Some(first) = items.first() {
        let ty = first.value_type();
        if let Some(bad) = items.iter().find(|v| v.value_type() != ty) {
            return Err(format!(
                "array mixes {} and {} elements",
                ty.name(),
                bad.type_name()
            ));
        }
    }
    items.iter().try_for_each(check_homogeneous)
}

/// A writer that counts what passes through it (for padding).
struct Counting<W> {
    inner: W,
    n: u64,
}

fn put<W: Write>(w: &mut Counting<W>, bytes: &[u8]) -> Result<(), GgufError> {
    w.inner.write_all(bytes).map_err(GgufError::Write)?;
    w.n += bytes.len() as u64;
    Ok(())
}

fn pad<W: Write>(w: &mut Counting<W>, alignment: u64) -> Result<(), GgufError> {
    const ZEROS: [u8; 64] = [0; 64];
    let mut left = w.n.next_multiple_of(alignment) - w.n;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64);
        put(w, &ZEROS[..n as usize])?;
        left -= n;
    }
    Ok(())
}

fn put_string<W: Write>(w: &mut Counting<W>, s: &str) -> Result<(), GgufError> {
    put(w, &(s.len() as u64).to_le_bytes())?;
    put(w, s.as_bytes())
}

fn put_value<W: Write>(w: &mut Counting<W>, value: &MetadataValue) -> Result<(), GgufError> {
    use MetadataValue as M;
    match value {
        M::U8(v) => put(w, &v.to_le_bytes()),
        M::I8(v) => put(w, &v.to_le_bytes()),
        M::U16(v) => put(w, &v.to_le_bytes()),
        M::I16(v) => put(w, &v.to_le_bytes()),
        M::U32(v) => put(w, &v.to_le_bytes()),
        M::I32(v) => put(w, &v.to_le_bytes()),
        M::F32(v) => put(w, &v.to_le_bytes()),
        M::Bool(v) => put(w, &[u8::from(*v)]),
        M::String(s) => put_string(w, s),
        M::U64(v) => put(w, &v.to_le_bytes()),
        M::I64(v) => put(w, &v.to_le_bytes()),
        M::F64(v) => put(w, &v.to_le_bytes()),
        M::Array(items) => {
            // An empty array's element type is not kept by `MetadataValue`; it is written as
            // UINT8 (gguf-py refuses to write empty arrays at all).
            let elem = items.first().map_or(ValueType::U8, |v| v.value_type());
            put(w, &elem.id().to_le_bytes())?;
            put(w, &(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|v| put_value(w, v))
        }
    }
}
