//! `bitnet.Embedder`: an encoder model (BERT) in-process, as `bitnet embed` runs it. Texts are
//! tokenized with the model's WordPiece vocabulary (`[CLS]` … `[SEP]`), cut to the context only
//! when `truncate=True` (else a longer text raises `ValueError`), run through the encoder in one
//! batch with the GIL released, pooled (the file's `pooling_type`, or `pooling=`) and
//! L2-normalised unless `normalize=False`. A reranker (pooling `rank`) scores query–document
//! pairs with `rerank`.

use std::path::PathBuf;

use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::{Encoder, Pooling};
use bitnet_tokenizer::Tokenizer;
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

use crate::options;
use crate::BitnetError;

/// `texts=`: one string or a list of them.
#[derive(FromPyObject)]
enum Texts {
    One(String),
    Many(Vec<String>),
}

/// An encoder model loaded in this process.
///
/// Embedder(path, threads=None, pooling=None, normalize=True)
///
/// path: a .gguf encoder (architecture `bert`; `bitnet convert` makes one from a Hugging Face
/// checkpoint). threads: kernel threads (default: BITNET_THREADS, else the physical cores).
/// pooling: "mean", "cls", "last" or "rank" (default: the file's pooling_type). normalize:
/// L2-normalise the vectors (not the scores of `rerank`).
#[pyclass(frozen, name = "Embedder", module = "bitnet")]
pub struct PyEmbedder {
    path: PathBuf,
    encoder: Encoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    pool: ThreadPool,
}

impl PyEmbedder {
    /// Token ids of each text, cut to the context when `truncate` (else a `ValueError` naming
    /// the first text that is too long).
    fn encode_all(&self, texts: &[String], truncate: bool) -> PyResult<Vec<Vec<u32>>> {
        let n_ctx = self.encoder.n_ctx();
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let ids = if truncate {
                    self.tokenizer
                        .encode_truncated(text, n_ctx)
                        .map(|(ids, _)| ids)
                } else {
                    self.tokenizer.encode(text)
                }
                .map_err(|e| BitnetError::new_err(format!("tokenizing text {i}: {e}")))?;
                if ids.len() > n_ctx {
                    return Err(PyValueError::new_err(format!(
                        "text {i} has {} tokens, more than the model's context of {n_ctx}: \
                         shorten it or pass truncate=True",
                        ids.len()
                    )));
                }
                Ok(ids)
            })
            .collect()
    }
}

#[pymethods]
impl PyEmbedder {
    #[new]
    #[pyo3(signature = (path, threads=None, pooling=None, normalize=true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        threads: Option<i64>,
        pooling: Option<&str>,
        normalize: bool,
    ) -> PyResult<Self> {
        if !path.is_file() {
            return Err(PyFileNotFoundError::new_err(format!(
                "model file not found: {}",
                path.display()
            )));
        }
        let threads = threads
            .map(|t| options::positive("threads", t))
            .transpose()?;
        let requested = match pooling {
            None => None,
            Some(name) => match Pooling::from_name(name) {
                Some(Pooling::None) | None => {
                    return Err(PyValueError::new_err(format!(
                        "pooling must be 'mean', 'cls', 'last' or 'rank', got {name:?}"
                    )))
                }
                p => p,
            },
        };
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            BitnetError::new_err(format!("{what} {}: {e}", path.display()))
        };
        let (encoder, tokenizer) = py.allow_threads(|| {
            let file = GgufFile::open(&path).map_err(|e| failed("opening", &e))?;
            let encoder = Encoder::load(&file).map_err(|e| failed("loading", &e))?;
            let tokenizer =
                Tokenizer::from_gguf(&file).map_err(|e| failed("reading the tokenizer of", &e))?;
            Ok::<_, PyErr>((encoder, tokenizer))
        })?;
        let pooling = requested.or(encoder.pooling()).ok_or_else(|| {
            PyValueError::new_err(
                "the model does not state its pooling (no pooling_type): pass pooling=",
            )
        })?;
        if pooling == Pooling::Rank && encoder.head().is_none() {
            return Err(PyValueError::new_err(
                "pooling 'rank' needs a reranker (a classification head, cls.weight); this model has none",
            ));
        }
        let pool = match threads {
            Some(t) => ThreadPool::new(t),
            None => ThreadPool::with_default_threads(),
        };
        Ok(PyEmbedder {
            path,
            encoder,
            tokenizer,
            pooling,
            normalize,
            pool,
        })
    }

    /// Width of the vectors.
    #[getter]
    fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// The most tokens one input may have.
    #[getter]
    fn n_ctx(&self) -> usize {
        self.encoder.n_ctx()
    }

    /// The pooling in effect: "mean", "cls", "last" or "rank".
    #[getter]
    fn pooling(&self) -> &'static str {
        self.pooling.name()
    }

    /// Token ids of `text` as `embed` gives them to the model (`[CLS]` … `[SEP]`).
    #[pyo3(signature = (text, truncate=false))]
    fn tokenize(&self, text: String, truncate: bool) -> PyResult<Vec<u32>> {
        Ok(self.encode_all(&[text], truncate)?.remove(0))
    }

    /// The embedding of `texts`: a float32 array of shape (dim,) for one string, (len(texts),
    /// dim) for a list. truncate=True cuts texts longer than the context (their last text
    /// tokens dropped, `[CLS]` and `[SEP]` kept) instead of raising ValueError.
    #[pyo3(signature = (texts, truncate=false))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Texts,
        truncate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if self.pooling == Pooling::Rank {
            return Err(PyValueError::new_err(
                "this model is a reranker (pooling 'rank'): use rerank(query, documents)",
            ));
        }
        let (texts, one) = match texts {
            Texts::One(t) => (vec![t], true),
            Texts::Many(t) => (t, false),
        };
        let d = self.encoder.dim();
        if texts.is_empty() {
            return Ok(PyArray2::<f32>::zeros(py, [0, d], false).into_any());
        }
        let ids = self.encode_all(&texts, truncate)?;
        let vectors = py
            .allow_threads(|| {
                let inputs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
                self.encoder
                    .embed(&inputs, self.pooling, self.normalize, &self.pool)
            })
            .map_err(|e| BitnetError::new_err(e.to_string()))?;
        let rows = vectors.len();
        let flat: Vec<f32> = vectors.into_iter().flatten().collect();
        let array = PyArray1::from_vec(py, flat);
        if one {
            Ok(array.into_any())
        } else {
            Ok(array.reshape([rows, d])?.into_any())
        }
    }

    /// Relevance scores of each document for `query` (a reranker: pooling 'rank'), in the
    /// documents' order: each pair is `[CLS] query [SEP] document [SEP]` through the model's
    /// classification head. A pair longer than the context raises ValueError.
    fn rerank(&self, py: Python<'_>, query: &str, documents: Vec<String>) -> PyResult<Vec<f32>> {
        if self.pooling != Pooling::Rank {
            return Err(PyValueError::new_err(format!(
                "this model is not a reranker (pooling {:?}): use embed(texts)",
                self.pooling.name()
            )));
        }
        let n_ctx = self.encoder.n_ctx();
        let mut ids = Vec::with_capacity(documents.len());
        let mut types = Vec::with_capacity(documents.len());
        for (i, document) in documents.iter().enumerate() {
            let pair = self
                .tokenizer
                .encode_pair(query, document)
                .map_err(|e| BitnetError::new_err(e.to_string()))?;
            if pair.ids.len() > n_ctx {
                return Err(PyValueError::new_err(format!(
                    "document {i} with the query has {} tokens, more than the model's context of {n_ctx}",
                    pair.ids.len()
                )));
            }
            ids.push(pair.ids);
            types.push(pair.segments);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let scores = py
            .allow_threads(|| {
                let inputs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
                let segments: Vec<&[u32]> = types.iter().map(Vec::as_slice).collect();
                self.encoder.embed_with_segments(
                    &inputs,
                    Some(&segments),
                    Pooling::Rank,
                    false,
                    &self.pool,
                )
            })
            .map_err(|e| BitnetError::new_err(e.to_string()))?;
        Ok(scores.into_iter().map(|v| v[0]).collect())
    }

    fn __repr__(&self) -> String {
        format!(
            "bitnet.Embedder(path={:?}, dim={}, pooling={:?})",
            self.path.display().to_string(),
            self.encoder.dim(),
            self.pooling.name()
        )
    }
}
