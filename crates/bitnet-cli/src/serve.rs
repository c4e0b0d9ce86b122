//! `bitnet serve`: the OpenAI-compatible HTTP server and its chat page (see `bitnet-server`).
//! Binds first and prints `listening on http://ADDR` on stdout, then loads the model in the
//! background (`/health` answers 503 until it is ready). On Ctrl-C or SIGTERM it drains: new
//! requests get 503, answers in flight get `--shutdown-grace` seconds to finish, then it exits 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bitnet_engine::BatchOptions;
use bitnet_model::Pooling;
use bitnet_server::{
    Backend, Embedder, Loaded, ServerConfig, DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
};
use bitnet_tokenizer::Tokenizer;

/// Arguments of `bitnet serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// GGUF model file (default: the model shipped in `models/`).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on the API routes (default: the BITNET_API_KEY
    /// environment variable, if set).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Sequences decoded together (continuous batching slots). Above 1, ternary matrices held
    /// 5 weights per byte (trit5, AVX-512 VBMI CPUs) also keep a 2-bit copy that the batched
    /// steps read: 25% more of their bytes in memory (2B-4T: +0.52 GB), 8 in flight ~7% faster.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Context size per sequence in tokens (default: the model's training context, at most
    /// 4096).
    #[arg(short = 'c', long = "ctx", alias = "ctx-size")]
    pub ctx: Option<usize>,
    /// Requests that may wait for a free slot; more get 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Most prompt tokens evaluated per batch step (so long prompts do not stall decoding).
    #[arg(long, default_value_t = 256)]
    pub prefill_chunk: usize,
    /// MiB of KV snapshots of finished sequences kept in memory for prompt reuse once their
    /// slot is taken (0: only the idle slots' caches are reused).
    #[arg(long, default_value_t = 0)]
    pub cache_ram: usize,
    /// Threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Chat template: a built-in name (see `bitnet templates`) or a Jinja file; default: the
    /// model's own template, else the built-in one detected for it.
    #[arg(long)]
    pub template: Option<String>,
    /// The model id clients use (default: the file name without `.gguf`).
    #[arg(long)]
    pub alias: Option<String>,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    pub max_body: usize,
    /// Seconds a client has to send its request headers (else it is disconnected), then its
    /// body (else 408).
    #[arg(long, default_value_t = DEFAULT_READ_TIMEOUT.as_secs_f64())]
    pub read_timeout: f64,
    /// On Ctrl-C or SIGTERM: seconds the answers in flight get to finish (new requests get 503
    /// and `/health` answers `draining` meanwhile); answers still running then end with an
    /// error event, and the server exits.
    #[arg(long, default_value_t = DEFAULT_SHUTDOWN_GRACE.as_secs_f64())]
    pub shutdown_grace: f64,
    /// Serve an embedding model (BERT, BitNet embedding) on `POST /v1/embeddings` (requests batched
    /// together) instead of text generation.
    #[arg(long)]
    pub embeddings: bool,
    /// With --embeddings: pooling `mean`, `cls`, `last`, or `rank` (a reranker, served on
    /// /v1/rerank) (default: the file's pooling_type).
    #[arg(long, requires = "embeddings", value_parser = parse_pooling)]
    pub pooling: Option<Pooling>,
    #[command(flatten)]
    pub load: crate::load::LoadArgs,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    match Pooling::from_name(s) {
        Some(Pooling::None) | None => Err(format!(
            "unknown pooling {s:?}: use mean, cls, last or rank"
        )),
        Some(p) => Ok(p),
    }
}

/// Runs `bitnet serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let model_path = crate::load::model_or_default(args.model.as_deref())?;
    let model_id = args
        .alias
        .clone()
        .unwrap_or_else(|| model_stem(&model_path));
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("BITNET_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let config = ServerConfig {
        model_id: model_id.clone(),
        api_key,
        body_limit: args.max_body,
        read_timeout: std::time::Duration::try_from_secs_f64(args.read_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--read-timeout must be a positive number of seconds")?,
        shutdown_grace: std::time::Duration::try_from_secs_f64(args.shutdown_grace)
            .context("--shutdown-grace must be a number of seconds, 0 or more")?,
    };
    let addr = format!("{}:{}", args.host, args.port);
    let loader_args = args.clone();
    let shown_path = model_path.display().to_string();
    bitnet_server::run(
        &addr,
        config,
        |bound| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{bound}");
            let _ = out.flush();
            eprintln!("serving {model_id} (loading {shown_path})");
        },
        move || {
            let loaded = if loader_args.embeddings {
                load_embedder(&model_path, &loader_args).map(|e| Loaded::Embedder(Box::new(e)))
            } else {
                load_backend(&model_path, &loader_args).map(|b| Loaded::Generator(Box::new(b)))
            };
            loaded.map_err(|e| format!("{e:#}"))
        },
    )?;
    Ok(())
}

/// The model id for a file: its name without `.gguf`.
fn model_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// Loads an encoder model and its tokenizer and starts the embedding worker.
fn load_embedder(path: &Path, args: &ServeArgs) -> anyhow::Result<Embedder> {
    let model = crate::embed::EmbeddingModel::open(path)?;
    let pooling = model.pooling(args.pooling)?;
    let pool = crate::load::thread_pool(args.threads);
    eprintln!(
        "embedding model ready: {} dimensions, {} tokens per input, {} pooling, {} threads",
        model.encoder.dim(),
        model.encoder.n_ctx(),
        pooling.name(),
        pool.threads()
    );
    Embedder::start(
        model.encoder,
        Arc::new(model.tokenizer),
        pooling,
        true,
        pool,
    )
    .map_err(anyhow::Error::msg)
}

/// Loads the model, tokenizer and chat template and starts the batch engine.
fn load_backend(path: &Path, args: &ServeArgs) -> anyhow::Result<Backend> {
    let (file, model) = crate::load::load_model(path, &args.load, args.parallel > 1)?;
    let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
    let template =
        bitnet_tokenizer::chat::ChatTemplate::resolve(args.template.as_deref(), &tokenizer)?;
    let context = args
        .ctx
        .unwrap_or_else(|| crate::load::default_context(&model));
    let options = BatchOptions {
        slots: args.parallel.max(1),
        context,
        queue: args.queue.max(1),
        prefill_chunk: args.prefill_chunk.max(2),
        cache_ram: args
            .cache_ram
            .checked_mul(1 << 20)
            .context("--cache-ram is too large")?,
    };
    let pool = crate::load::thread_pool(args.threads);
    let cache_type = model.cache_type();
    let kv_bytes = cache_type.cache_bytes(model.config(), context) * options.slots;
    eprintln!(
        "model ready: {} slots x {context} tokens, KV cache {} {:.1} MiB when every slot is in \
         use, {} threads, template {}",
        options.slots,
        cache_type.name(),
        kv_bytes as f64 / (1 << 20) as f64,
        pool.threads(),
        template.name()
    );
    Ok(Backend::start(
        Arc::new(model),
        Arc::new(tokenizer),
        template,
        pool,
        options,
    ))
}
