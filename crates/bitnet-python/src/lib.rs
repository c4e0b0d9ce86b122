//! The `bitnet` Python package's native module (`bitnet._bitnet`): the engine in-process, as thin
//! as the CLI. A [`PyModel`] owns a loaded model, its tokenizer and a kernel thread pool;
//! `generate`, `stream` and `chat` build a request by the engine's own rules
//! (`bitnet_engine::prompt`) and run the engine's generation loop (`bitnet_engine::generate`)
//! with the GIL released; `logits` and `perplexity` call the model directly. An encoder model
//! (BERT) is a [`embedder::PyEmbedder`] (`bitnet.Embedder`): sentence embeddings and rerank
//! scores. Argument checks raise `ValueError`, a missing file `FileNotFoundError`, and every
//! engine failure `bitnet.BitnetError` carrying the engine's message.

#![forbid(unsafe_code)]

mod embedder;
mod options;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitnet_engine::{
    Constraint, ConstraintCompiler, ConstraintError, ConstraintSpec, EngineError, GenerateRequest,
    Generation,
};
use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::perplexity::PerplexityError;
use bitnet_model::{HeadFormat, LoadOptions, Model, ModelError};
use bitnet_tokenizer::chat::{ChatTemplate, Message};
use bitnet_tokenizer::{EncodeOptions, Tokenizer, TokenizerError};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::options::{GenerateOptions, Stop};
use crate::stream::TextStream;

create_exception!(
    bitnet,
    BitnetError,
    PyException,
    "An error from the engine (loading a model, tokenizing, running it); the message is the engine's."
);

/// The shipped model's file name inside the package (`bitnet/models/`).
const SHIPPED_MODEL: &str = "bitnet-b158-kjv-29m.gguf";

/// What `Model.info` reports, read once at load.
struct ModelFacts {
    path: PathBuf,
    name: Option<String>,
    architecture: String,
    parameters: u64,
    file_bytes: u64,
    head: &'static str,
}

/// A loaded model with what running it needs; shared with stream threads.
pub(crate) struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    pool: ThreadPool,
    facts: ModelFacts,
    /// Built on the first `json_schema=` request (the token trie of the vocabulary).
    constraints: std::sync::OnceLock<Result<ConstraintCompiler, ConstraintError>>,
}

impl Engine {
    /// Runs one generation from an empty cache of `capacity` tokens.
    pub(crate) fn generate(
        &self,
        request: &GenerateRequest,
        capacity: usize,
        on_text: impl FnMut(&str) -> Result<(), String>,
    ) -> Result<Generation, EngineError> {
        let mut cache = self.model.new_cache(capacity);
        bitnet_engine::generate(
            &self.model,
            &self.tokenizer,
            &mut cache,
            &self.pool,
            request,
            on_text,
        )
    }

    /// Runs one generation to its end and returns its text.
    fn text(&self, request: &GenerateRequest, capacity: usize) -> Result<String, EngineError> {
        let mut text = String::new();
        self.generate(request, capacity, |piece| {
            text.push_str(piece);
            Ok(())
        })?;
        Ok(text)
    }

    /// The constraint of `options` (its JSON Schema), compiled for this model's vocabulary.
    fn constraint(&self, options: &GenerateOptions) -> Result<Option<Constraint>, EngineError> {
        let Some(schema) = &options.json_schema else {
            return Ok(None);
        };
        let compiler = self
            .constraints
            .get_or_init(|| ConstraintCompiler::new(&self.tokenizer))
            .as_ref()
            .map_err(|e| EngineError::Constraint(e.clone()))?;
        Ok(Some(
            compiler.compile(&ConstraintSpec::JsonSchema(schema.clone()))?,
        ))
    }

    /// The request and cache size of a one-shot completion of `prompt`.
    fn completion(
        &self,
        prompt: &str,
        options: GenerateOptions,
    ) -> Result<(GenerateRequest, usize), EngineError> {
        let ids = bitnet_engine::encode_prompt(&self.tokenizer, prompt)?;
        let capacity =
            bitnet_engine::one_shot_capacity(&self.model, ids.len(), options.max_tokens, None)?;
        let constraint = self.constraint(&options)?;
        let request = GenerateRequest {
            prompt: ids,
            max_tokens: options.max_tokens,
            sampling: options.sampling,
            stop: options.stop,
            stop_tokens: Vec::new(),
            show_special: false,
            constraint,
        };
        Ok((request, capacity))
    }

    /// The request and cache size of the assistant's answer to `messages` under `template`
    /// (the model's own when `None`); `stop` strings are added to the template's.
    fn chat(
        &self,
        messages: &[Message],
        template: Option<&str>,
        options: GenerateOptions,
    ) -> Result<(GenerateRequest, usize), EngineError> {
        let template = ChatTemplate::resolve(template, &self.tokenizer)?;
        let ids = template.encode(&self.tokenizer, messages, true)?;
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let capacity =
            bitnet_engine::one_shot_capacity(&self.model, ids.len(), options.max_tokens, None)?;
        let constraint = self.constraint(&options)?;
        let mut request = bitnet_engine::chat_request(
            &template,
            &self.tokenizer,
            ids,
            options.max_tokens,
            options.sampling,
        );
        request.stop.extend(options.stop);
        request.constraint = constraint;
        Ok((request, capacity))
    }
}

/// A Python exception for an engine error: bad input (`ValueError`) or an engine failure
/// (`BitnetError`), with the engine's message.
pub(crate) fn engine_error(e: EngineError) -> PyErr {
    match e {
        EngineError::EmptyPrompt
        | EngineError::PromptTooLong { .. }
        | EngineError::Model(ModelError::TokenOutOfRange { .. })
        | EngineError::Tokenizer(TokenizerError::IdOutOfRange { .. })
        | EngineError::Tokenizer(TokenizerError::UnknownTemplate(_))
        | EngineError::Constraint(
            ConstraintError::Unsupported { .. } | ConstraintError::NoEndToken,
        ) => PyValueError::new_err(e.to_string()),
        e => BitnetError::new_err(e.to_string()),
    }
}

/// The shipped model inside the installed package, or `FileNotFoundError` saying where it was
/// looked for.
fn shipped_model(py: Python<'_>) -> PyResult<PathBuf> {
    let package_file: PathBuf = py.import("bitnet")?.getattr("__file__")?.extract()?;
    let path = package_file
        .parent()
        .unwrap_or(Path::new("."))
        .join("models")
        .join(SHIPPED_MODEL);
    if path.is_file() {
        Ok(path)
    } else {
        Err(PyFileNotFoundError::new_err(format!(
            "no path given and the shipped model is missing from the package ({}): pass \
             Model(path='MODEL.gguf'), or reinstall the bitnet wheel",
            path.display()
        )))
    }
}

/// Loads `path`: the GGUF file, the model and its tokenizer.
fn load(path: &Path, head: HeadFormat, threads: Option<usize>) -> PyResult<Engine> {
    if !path.is_file() {
        return Err(PyFileNotFoundError::new_err(format!(
            "model file not found: {}",
            path.display()
        )));
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        BitnetError::new_err(format!("{what} {}: {e}", path.display()))
    };
    // A BITNET_ISA the kernels cannot honour is refused, not silently replaced.
    bitnet_kernels::select_isa().map_err(|e| {
        BitnetError::new_err(format!(
            "{e}; set BITNET_ISA to a tier this CPU has, or unset it"
        ))
    })?;
    let file = GgufFile::open(path).map_err(|e| failed("opening", &e))?;
    let model = Model::load_with(
        &file,
        LoadOptions {
            head,
            ..Default::default()
        },
    )
    .map_err(|e| failed("loading", &e))?;
    let tokenizer =
        Tokenizer::from_gguf(&file).map_err(|e| failed("reading the tokenizer of", &e))?;
    let facts = ModelFacts {
        path: path.to_path_buf(),
        name: file.get_str("general.name").map(str::to_string),
        architecture: file.architecture().unwrap_or("").to_string(),
        parameters: file.tensors().iter().map(|t| t.n_elements).sum(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        head: head.name(),
    };
    let pool = match threads {
        Some(t) => ThreadPool::new(t),
        None => ThreadPool::with_default_threads(),
    };
    Ok(Engine {
        model,
        tokenizer,
        pool,
        facts,
        constraints: std::sync::OnceLock::new(),
    })
}

/// A GGUF model loaded in this process: BitNet b1.58 (I2_S, TQ1_0, TQ2_0, TL1/TL2) or a
/// llama-family model (llama, qwen3, gemma3) in the usual GGUF types.
///
/// Model(path=None, threads=None, head=None, device=None)
///
/// path: the .gguf file; None loads the model shipped in the package (a 29M-parameter BitNet
/// b1.58 trained on the King James Bible and Canterbury texts). threads: kernel threads (default:
/// BITNET_THREADS, else the physical cores). head: "f16" (as stored, default), "q8_0"
/// (requantized at load, about half the bytes read per token) or "q6_k" (ggml's 6-bit k-quant,
/// 0.82 bytes per weight). device: None or "cpu" (this build
/// has no GPU backend).
///
/// All methods may be called from several Python threads at once: the GIL is released while the
/// model computes.
#[pyclass(frozen, name = "Model", module = "bitnet")]
struct PyModel {
    engine: Arc<Engine>,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (path=None, threads=None, head=None, device=None))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        threads: Option<i64>,
        head: Option<&str>,
        device: Option<&str>,
    ) -> PyResult<Self> {
        options::check_device(device)?;
        let threads = threads
            .map(|t| options::positive("threads", t))
            .transpose()?;
        let head = match head {
            None => HeadFormat::AsStored,
            Some(name) => HeadFormat::from_name(name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "head must be 'f16', 'q8_0' or 'q6_k', got {name:?}"
                ))
            })?,
        };
        let path = match path {
            Some(path) => path,
            None => shipped_model(py)?,
        };
        let engine = py.allow_threads(|| load(&path, head, threads))?;
        Ok(PyModel {
            engine: Arc::new(engine),
        })
    }

    /// What was loaded: a dict with path, name, architecture, parameters, file_bytes, n_vocab,
    /// n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head, threads, isa, bos, eos.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = &self.engine;
        let config = e.model.config();
        let info = PyDict::new(py);
        info.set_item("path", e.facts.path.display().to_string())?;
        info.set_item("name", e.facts.name.clone())?;
        info.set_item("architecture", e.facts.architecture.clone())?;
        info.set_item("parameters", e.facts.parameters)?;
        info.set_item("file_bytes", e.facts.file_bytes)?;
        info.set_item("n_vocab", config.n_vocab)?;
        info.set_item("n_ctx_train", config.n_ctx_train)?;
        info.set_item("n_embd", config.n_embd)?;
        info.set_item("n_layer", config.n_layer)?;
        info.set_item("n_head", config.n_head)?;
        info.set_item("n_head_kv", config.n_head_kv)?;
        info.set_item("n_ff", config.n_ff)?;
        info.set_item("head", e.facts.head)?;
        info.set_item("threads", e.pool.threads())?;
        info.set_item("isa", bitnet_kernels::active_isa().name())?;
        info.set_item("bos", e.tokenizer.bos())?;
        info.set_item("eos", e.tokenizer.eos())?;
        Ok(info)
    }

    /// Generates a continuation of `prompt` and returns its text (without the prompt).
    ///
    /// The prompt is tokenized as `bitnet run` does (BOS if the model adds it, special tokens
    /// parsed). Greedy by default (temperature=0); otherwise llama.cpp's samplers with
    /// `bitnet run`'s defaults (top_k=40, top_p=0.95, min_p=0.05). Generation ends after
    /// max_tokens, at an end-of-generation token, or at a stop string (a str or a list of str,
    /// removed from the text). The same seed gives the same text. `json_schema` (a dict or a JSON
    /// string) constrains the text to JSON valid against that schema; a schema that cannot be
    /// enforced raises ValueError naming the part.
    #[pyo3(signature = (prompt, max_tokens=128, temperature=0.0, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=None, stop=None, json_schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        max_tokens: i64,
        temperature: f32,
        top_p: f32,
        top_k: i64,
        min_p: f32,
        repeat_penalty: f32,
        seed: Option<i64>,
        stop: Option<Stop>,
        json_schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let options = GenerateOptions::new(
            max_tokens,
            temperature,
            top_p,
            top_k,
            min_p,
            repeat_penalty,
            seed,
            stop,
        )?
        .with_json_schema(json_schema)?;
        let engine = &self.engine;
        py.allow_threads(|| {
            let (request, capacity) = engine.completion(prompt, options)?;
            engine.text(&request, capacity)
        })
        .map_err(engine_error)
    }

    /// Like `generate`, but returns an iterator of text pieces as they are decoded (a piece
    /// may hold several tokens' text, or wait for the bytes of a character to complete). The
    /// model runs on its own thread, the GIL released; after the iterator is exhausted its
    /// `tokens` and `finish_reason` tell what was generated. Dropping the iterator stops the
    /// generation at the next token.
    #[pyo3(signature = (prompt, max_tokens=128, temperature=0.0, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=None, stop=None, json_schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        prompt: &str,
        max_tokens: i64,
        temperature: f32,
        top_p: f32,
        top_k: i64,
        min_p: f32,
        repeat_penalty: f32,
        seed: Option<i64>,
        stop: Option<Stop>,
        json_schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TextStream> {
        let options = GenerateOptions::new(
            max_tokens,
            temperature,
            top_p,
            top_k,
            min_p,
            repeat_penalty,
            seed,
            stop,
        )?
        .with_json_schema(json_schema)?;
        let engine = &self.engine;
        let (request, capacity) = py
            .allow_threads(|| engine.completion(prompt, options))
            .map_err(engine_error)?;
        Ok(TextStream::start(engine.clone(), request, capacity))
    }

    /// The assistant's answer to `messages` (a list of {"role": ..., "content": ...} dicts),
    /// rendered with the model's chat template (or `template`: a built-in name or a Jinja
    /// file). Ends at the template's end-of-turn, max_tokens, or a `stop` string; sampling as in
    /// `generate`.
    #[pyo3(signature = (messages, max_tokens=512, temperature=0.0, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=None, stop=None, template=None, json_schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn chat(
        &self,
        py: Python<'_>,
        messages: Vec<Bound<'_, PyDict>>,
        max_tokens: i64,
        temperature: f32,
        top_p: f32,
        top_k: i64,
        min_p: f32,
        repeat_penalty: f32,
        seed: Option<i64>,
        stop: Option<Stop>,
        template: Option<&str>,
        json_schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let messages = options::messages(&messages)?;
        let options = GenerateOptions::new(
            max_tokens,
            temperature,
            top_p,
            top_k,
            min_p,
            repeat_penalty,
            seed,
            stop,
        )?
        .with_json_schema(json_schema)?;
        let engine = &self.engine;
        py.allow_threads(|| {
            let (request, capacity) = engine.chat(&messages, template, options)?;
            engine.text(&request, capacity)
        })
        .map_err(engine_error)
    }

    /// Token ids of `text`. add_special: add BOS if the model adds it; parse_special: read
    /// special-token texts (e.g. "<|im_start|>") as those tokens. The defaults are how
    /// `generate` tokenizes its prompt.
    #[pyo3(signature = (text, add_special=true, parse_special=true))]
    fn tokenize(
        &self,
        py: Python<'_>,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> PyResult<Vec<u32>> {
        let tokenizer = &self.engine.tokenizer;
        py.allow_threads(|| {
            tokenizer.encode_with(
                text,
                EncodeOptions {
                    add_special,
                    parse_special,
                },
            )
        })
        .map_err(|e| engine_error(e.into()))
    }

    /// The text of token ids (special tokens hidden unless show_special). Ids outside the
    /// vocabulary raise ValueError.
    #[pyo3(signature = (tokens, show_special=false))]
    fn detokenize(&self, tokens: Vec<i64>, show_special: bool) -> PyResult<String> {
        let ids = options::token_ids(&tokens)?;
        self.engine
            .tokenizer
            .decode(&ids, show_special)
            .map_err(|e| engine_error(e.into()))
    }

    /// The model's logits for `tokens` evaluated as one sequence from an empty context: a
    /// float32 array of shape (len(tokens), n_vocab), row i predicting the token after
    /// tokens[i]. The array takes over the engine's buffer (no copy).
    fn logits<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<i64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ids = options::token_ids(&tokens)?;
        if ids.is_empty() {
            return Err(PyValueError::new_err(
                "tokens is empty: give at least one token id",
            ));
        }
        let engine = &self.engine;
        let rows = ids.len();
        let values = py
            .allow_threads(|| {
                let mut cache = engine.model.new_cache(rows);
                engine.model.forward(&ids, &mut cache, 0, &engine.pool)
            })
            .map_err(|e| engine_error(e.into()))?;
        PyArray1::from_vec(py, values).reshape([rows, engine.model.n_vocab()])
    }

    /// Perplexity of `text` as `bitnet perplexity` (and llama-perplexity) computes it: chunks
    /// of `ctx` tokens, the second half of each scored. Returns a dict: ppl, stderr (the ± of
    /// llama.cpp's final line), chunk_ppl (a list), tokens_scored. The text must hold at
    /// least 2·ctx tokens.
    #[pyo3(signature = (text, ctx=512, chunks=None))]
    fn perplexity<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        ctx: i64,
        chunks: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ctx = options::positive("ctx", ctx)?;
        let chunks = match chunks {
            Some(c) => options::positive("chunks", c)?,
            None => usize::MAX,
        };
        let engine = &self.engine;
        let report = py
            .allow_threads(|| {
                let tokens = bitnet_engine::perplexity_tokens(&engine.tokenizer, text)?;
                let params = bitnet_engine::perplexity_params(&engine.tokenizer, ctx, chunks);
                Ok(bitnet_model::perplexity(
                    &engine.model,
                    &tokens,
                    params,
                    &engine.pool,
                    |_, _| {},
                ))
            })
            .map_err(|e: TokenizerError| engine_error(e.into()))?
            .map_err(|e| match e {
                PerplexityError::Model(e) => engine_error(e.into()),
                e => PyValueError::new_err(e.to_string()),
            })?;
        let result = PyDict::new(py);
        result.set_item("ppl", report.ppl)?;
        result.set_item("stderr", report.stderr)?;
        result.set_item("chunk_ppl", report.chunk_ppl)?;
        result.set_item("tokens_scored", report.n_scored)?;
        Ok(result)
    }

    fn __repr__(&self) -> String {
        format!(
            "bitnet.Model(path={:?}, architecture={:?})",
            self.engine.facts.path.display().to_string(),
            self.engine.facts.architecture
        )
    }
}

/// The native module: `Model`, `Embedder`, `TextStream`, `BitnetError`.
#[pymodule]
fn _bitnet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_class::<embedder::PyEmbedder>()?;
    m.add_class::<TextStream>()?;
    m.add("BitnetError", m.py().get_type::<BitnetError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
