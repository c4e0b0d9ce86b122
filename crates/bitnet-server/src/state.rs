//! What the handlers share: the server's settings, the metrics, and the loaded model (its batch
//! engine, tokenizer and chat template), which arrives after the server has bound its port, and
//! the drain state of a graceful shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitnet_engine::{BatchEngine, BatchOptions, ConstraintCompiler, ConstraintError};
use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use bitnet_tokenizer::chat::ChatTemplate;
use bitnet_tokenizer::Tokenizer;

use crate::drain::Drain;
use crate::embeddings::Embedder;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Default time a client has to send a request's headers, and then its body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time answers in flight may run on after a shutdown signal before they are ended.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Settings fixed when the server starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The id clients name the model by (the file stem); `"default"` is accepted too.
    pub model_id: String,
    /// When set, every `/v1` route (and `/tokenize`, `/detokenize`, `/metrics`) needs
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub body_limit: usize,
    /// Time a client has to send a request's headers (else the connection is closed), and
    /// then its body (else 408).
    pub read_timeout: Duration,
    /// After a shutdown signal: how long answers already admitted may run on before they are
    /// ended (see [`crate::drain`]).
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Settings for serving `model_id` with no API key and the default body limit.
    pub fn new(model_id: impl Into<String>) -> Self {
        ServerConfig {
            model_id: model_id.into(),
            api_key: None,
            body_limit: DEFAULT_BODY_LIMIT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// A loaded model behind its batch engine.
pub struct Backend {
    pub engine: BatchEngine,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    /// Compiles response formats, grammars and tool-call grammars for this vocabulary (the
    /// error when the vocabulary cannot carry one, answered to requests that ask).
    pub constraints: Result<ConstraintCompiler, ConstraintError>,
}

impl Backend {
    /// Starts the batch engine over `model`; `template` renders chat requests.
    pub fn start(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        template: ChatTemplate,
        pool: ThreadPool,
        options: BatchOptions,
    ) -> Self {
        let constraints = ConstraintCompiler::new(&tokenizer);
        let engine = BatchEngine::start(model, Arc::clone(&tokenizer), pool, options);
        Backend {
            engine,
            tokenizer,
            template,
            constraints,
        }
    }

    /// Positions per sequence.
    pub fn context(&self) -> usize {
        self.engine.options().context
    }
}

/// What the loader hands the server: a text generator, or an encoder for `/v1/embeddings`.
pub enum Loaded {
    Generator(Box<Backend>),
    Embedder(Box<Embedder>),
}

/// The state every handler sees.
pub struct AppState {
    pub config: ServerConfig,
    pub metrics: Metrics,
    /// Admission of requests, and the drain after a shutdown signal.
    pub drain: Arc<Drain>,
    /// Unix time the server started (the `created` of its model entry).
    pub started: u64,
    backend: OnceLock<Backend>,
    embedder: OnceLock<Embedder>,
    ids: AtomicU64,
}

impl AppState {
    /// State for a server whose model is still loading.
    pub fn new(config: ServerConfig) -> Arc<Self> {
        Arc::new(AppState {
            config,
            metrics: Metrics::default(),
            drain: Arc::new(Drain::default()),
            started: unix_time(),
            backend: OnceLock::new(),
            embedder: OnceLock::new(),
            ids: AtomicU64::new(0),
        })
    }

    /// Marks the model loaded. A second call is refused (returns the backend back).
    pub fn set_ready(&self, backend: Backend) -> Result<(), Box<Backend>> {
        self.backend.set(backend).map_err(Box::new)
    }

    /// Marks an encoder loaded: the server answers `/v1/embeddings` (and refuses generation).
    pub fn set_embedder(&self, embedder: Embedder) -> Result<(), Box<Embedder>> {
        self.embedder.set(embedder).map_err(Box::new)
    }

    /// Whether the model is loaded.
    pub fn is_ready(&self) -> bool {
        self.backend.get().is_some() || self.embedder.get().is_some()
    }

    /// The loaded generator; 503 while it loads, 400 on an embeddings server.
    pub fn backend(&self) -> Result<&Backend, ApiError> {
        match (self.backend.get(), self.embedder.get()) {
            (Some(b), _) => Ok(b),
            (None, Some(_)) => Err(ApiError::bad_request(
                "this server serves an encoder model: only /v1/embeddings (or /v1/rerank for a reranker) is available",
            )),
            (None, None) => Err(ApiError::loading()),
        }
    }

    /// The loaded encoder; 503 while it loads, 400 on a text-generation server.
    pub fn embedder(&self) -> Result<&Embedder, ApiError> {
        match (self.embedder.get(), self.backend.get()) {
            (Some(e), _) => Ok(e),
            (None, Some(_)) => Err(ApiError::bad_request(
                "this server serves a text-generation model: start `bitnet serve --embeddings` with an encoder model for /v1/embeddings",
            )),
            (None, None) => Err(ApiError::loading()),
        }
    }

    /// Checks a request's `model` against the served one (absent, the served id, or
    /// `"default"` are accepted).
    pub fn check_model(&self, requested: Option<&str>) -> Result<(), ApiError> {
        match requested {
            None | Some("") | Some("default") => Ok(()),
            Some(m) if m == self.config.model_id => Ok(()),
            Some(m) => Err(ApiError::unknown_model(m, &self.config.model_id)),
        }
    }

    /// A fresh response id with this prefix (`chatcmpl`, `cmpl`).
    pub fn new_id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:016x}{n:06x}", random_u64())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 64-bit number (the standard library's per-process random hasher keys).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
