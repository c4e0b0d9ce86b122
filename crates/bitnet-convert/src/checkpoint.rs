//! Reading a Hugging Face safetensors checkpoint: one `model.safetensors` or the shards named by
//! `model.safetensors.index.json`, each memory-mapped (nothing is copied until a tensor is asked
//! for), with a name → (shard, dtype, shape, byte range) index over all of them.

use bitnet_gguf::map_read_only;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{ConvertError, Result};

/// One tensor's place in the checkpoint.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the shard's file.
    start: usize,
    end: usize,
}

/// The tensors of a checkpoint directory, memory-mapped.
pub struct Checkpoint {
    shards: Vec<(PathBuf, memmap2::Mmap)>,
    index: HashMap<String, Entry>,
}

/// A borrowed tensor: dtype, shape (HF order: outermost first) and raw little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

impl Checkpoint {
    /// Opens `dir/model.safetensors.index.json` (and its shards) if present, else
    /// `dir/model.safetensors`.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files: Vec<PathBuf> = if index_path.is_file() {
            shard_files(&index_path)?
                .into_iter()
                .map(|f| dir.join(f))
                .collect()
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(ConvertError::NoWeights {
                dir: dir.to_path_buf(),
            });
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (shard, path) in files.into_iter().enumerate() {
            let map = map_file(&path)?;
            let bad = |reason: String| ConvertError::Safetensors {
                path: path.clone(),
                reason,
            };
            let (header_len, metadata) =
                SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
            let data_start = 8 + header_len;
            for (name, info) in metadata.tensors() {
                let (start, end) = info.data_offsets;
                let entry = Entry {
                    shard,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + start,
                    end: data_start + end,
                };
                if map.len() < entry.end {
                    return Err(bad(format!("tensor {name} runs past the end of the file")));
                }
                if index.insert(name.clone(), entry).is_some() {
                    return Err(bad(format!("tensor {name} appears in more than one shard")));
                }
            }
            shards.push((path, map));
        }
        Ok(Checkpoint { shards, index })
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.index.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor `name`, or `MissingTensor`.
    pub fn tensor<'a>(&'a self, name: &'a str) -> Result<TensorRef<'a>> {
        let entry = self
            .index
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor {
                name: name.to_string(),
            })?;
        Ok(TensorRef {
            name,
            dtype: entry.dtype,
            shape: &entry.shape,
            bytes: &self.shards[entry.shard].1[entry.start..entry.end],
        })
    }

    /// The shard files, in order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|(p, _)| p.as_path())
    }
}

impl TensorRef<'_> {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn bad(&self, reason: String) -> ConvertError {
        ConvertError::BadTensor {
            name: self.name.to_string(),
            reason,
        }
    }

    /// Checks the shape.
    pub fn expect_shape(&self, want: &[usize]) -> Result<()> {
        if self.shape != want {
            return Err(self.bad(format!("shape {:?}, expected {want:?}", self.shape)));
        }
        Ok(())
    }

    /// The values widened to f32 (exact for F32, F16 and BF16; F64 is rounded to nearest).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let b = self.bytes;
        let expected = self.n_elements() * self.dtype.size();
        if b.len() != expected {
            return Err(self.bad(format!(
                "{} bytes for {:?} {:?} ({expected} expected)",
                b.len(),
                self.dtype,
                self.shape
            )));
        }
        Ok(match self.dtype {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => {
                return Err(self.bad(format!("dtype {other:?} where a float tensor was expected")))
            }
        })
    }

    /// A one-element float tensor (any shape with one element) as f32.
    pub fn scalar_f32(&self) -> Result<f32> {
        match self.to_f32()?.as_slice() {
            [v] => Ok(*v),
            other => Err(self.bad(format!(
                "{} elements where a single scale was expected",
                other.len()
            ))),
        }
    }
}

/// The shard file names listed in an index's `weight_map`, in first-appearance-sorted order.
fn shard_files(index_path: &Path) -> Result<Vec<String>> {
    let json = crate::config::read_json(index_path)?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ConvertError::Json {
            path: index_path.to_path_buf(),
            reason: "no \"weight_map\" object".into(),
        })?;
    let mut files = BTreeSet::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| ConvertError::Json {
            path: index_path.to_path_buf(),
            reason: format!("weight_map[{name}] is not a file name"),
        })?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(ConvertError::Json {
                path: index_path.to_path_buf(),
                reason: format!("shard name {file:?} is not a plain file name"),
            });
        }
        files.insert(file.to_string());
    }
    Ok(files.into_iter().collect())
}

/// Maps a file read-only.
fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let io = |error| ConvertError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    map_read_only(&file).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(dtype: Dtype, shape: &'a [usize], bytes: &'a [u8]) -> TensorRef<'a> {
        TensorRef {
            name: "t",
            dtype,
            shape,
            bytes,
        }
    }

    /// IEEE bit patterns: f16 0x3C00 = 1.0, 0xC000 = -2.0, 0x0001 = 2^-24;
    /// bf16 0x3F80 = 1.0, 0xC040 = -3.0, 0x0001 = 2^-133.
    #[test]
    fn half_precision_inputs_widen_exactly() {
        let f16 = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00];
        assert_eq!(
            view(Dtype::F16, &[3], &f16).to_f32().unwrap(),
            [1.0, -2.0, 2f32.powi(-24)]
        );
        let bf16 = [0x80, 0x3F, 0x40, 0xC0, 0x01, 0x00];
        assert_eq!(
            view(Dtype::BF16, &[3], &bf16).to_f32().unwrap(),
            [1.0, -3.0, f32::from_bits(1 << 16)]
        );
        assert_eq!(f32::from_bits(1 << 16), 2f32.powi(-133));
    }

    #[test]
    fn wrong_dtypes_and_lengths_are_refused() {
        let err = view(Dtype::I32, &[1], &[0; 4]).to_f32().unwrap_err();
        assert!(err.to_string().contains("I32"), "{err}");
        let err = view(Dtype::F32, &[2], &[0; 4]).to_f32().unwrap_err();
        assert!(err.to_string().contains("8 expected"), "{err}");
        let err = view(Dtype::F32, &[2], &[0; 8]).scalar_f32().unwrap_err();
        assert!(err.to_string().contains("single scale"), "{err}");
    }

    #[test]
    fn a_directory_without_weights_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Checkpoint::open(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("no model.safetensors"), "{err}");
    }
}
