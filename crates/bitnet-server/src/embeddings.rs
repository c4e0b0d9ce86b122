//! `POST /v1/embeddings` (OpenAI's shape) over an encoder model, and the [`Embedder`] that
//! batches requests: one worker thread takes every request waiting when it is free (up to
//! [`MAX_BATCH_TOKENS`] tokens together) and runs all their inputs through the encoder in one
//! pass, so concurrent clients share each matrix product.
//!
//! `input` is a string, an array of strings, an array of token ids, or an array of such arrays.
//! `encoding_format` is `float` (default) or `base64` (the little-endian f32 bytes).
//! `dimensions` is accepted only when it equals the model's width (the models served here are
//! not trained for shortened vectors). An input longer than the model's context is a 400, or
//! with `"truncate": true` (the name text-embeddings-inference and Ollama use) is cut to the
//! context: its last text tokens are dropped and `[CLS]` / `[SEP]` kept (a token list keeps a
//! final special token such as `[SEP]` last). `usage` counts the tokens embedded.
//!
//! A reranker (a cross-encoder with `pooling_type` rank) is served by the same worker on
//! `POST /v1/rerank` ([`crate::rerank`]): each query–document pair is one input whose tokens
//! carry their segment.

use std::sync::mpsc;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Json;
use bitnet_kernels::ThreadPool;
use bitnet_model::{Encoder, Pooling};
use bitnet_tokenizer::Tokenizer;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai::parse_body;
use crate::read_body;
use crate::state::AppState;

/// Most tokens the worker puts in one batch (requests beyond wait for the next pass; a single
/// request larger than this still runs, alone).
pub const MAX_BATCH_TOKENS: usize = 16_384;

/// One request's inputs (with each token's segment for text pairs) and where its vectors go.
struct Job {
    inputs: Vec<Vec<u32>>,
    token_types: Option<Vec<Vec<u32>>>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

/// An encoder model behind its batching worker.
pub struct Embedder {
    pub tokenizer: Arc<Tokenizer>,
    dim: usize,
    n_ctx: usize,
    pooling: Pooling,
    jobs: mpsc::Sender<Job>,
}

impl Embedder {
    /// Starts the worker over `encoder` with `pooling` (not [`Pooling::None`]: one vector per
    /// input is what the endpoint returns) and L2 normalisation when `normalize`. With
    /// [`Pooling::Rank`] the worker scores pairs for `/v1/rerank`.
    pub fn start(
        encoder: Encoder,
        tokenizer: Arc<Tokenizer>,
        pooling: Pooling,
        normalize: bool,
        pool: ThreadPool,
    ) -> Result<Self, String> {
        if pooling == Pooling::None {
            return Err("pooling `none` gives one vector per token; /v1/embeddings needs one per input: choose mean, cls or last".into());
        }
        if pooling == Pooling::Rank {
            match encoder.head().map(|h| h.labels()) {
                None => return Err("pooling `rank` needs a reranker (a model with a classification head, cls.weight); this model has none".into()),
                Some(1) => {}
                Some(n) => return Err(format!("pooling `rank` needs a reranker's head with one output (a relevance score); this model's head has {n} outputs")),
            }
        }
        let (dim, n_ctx) = (encoder.dim(), encoder.n_ctx());
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("bitnet-embed".into())
            .spawn(move || worker(encoder, pooling, normalize, pool, rx))
            .map_err(|e| format!("starting the embedding worker: {e}"))?;
        Ok(Embedder {
            tokenizer,
            dim,
            n_ctx,
            pooling,
            jobs: tx,
        })
    }

    /// The pooling the worker applies ([`Pooling::Rank`]: a reranker).
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Most tokens per input.
    pub fn context(&self) -> usize {
        self.n_ctx
    }

    /// The vectors of `inputs` (with each token's segment when `token_types` is given),
    /// computed with whatever other requests are waiting.
    pub(crate) async fn embed(
        &self,
        inputs: Vec<Vec<u32>>,
        token_types: Option<Vec<Vec<u32>>>,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                inputs,
                token_types,
                reply,
            })
            .map_err(|_| ApiError::internal("the embedding worker stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the embedding worker stopped"))?
            .map_err(ApiError::internal)
    }
}

/// Takes the first waiting job, then every further one that fits [`MAX_BATCH_TOKENS`], runs them
/// as one batch and answers each.
fn worker(
    encoder: Encoder,
    pooling: Pooling,
    normalize: bool,
    pool: ThreadPool,
    rx: mpsc::Receiver<Job>,
) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut tokens: usize = first.inputs.iter().map(Vec::len).sum();
        let mut batch = vec![first];
        while let Ok(job) = rx.try_recv() {
            let more: usize = job.inputs.iter().map(Vec::len).sum();
            if tokens + more > MAX_BATCH_TOKENS {
                carried = Some(job);
                break;
            }
            tokens += more;
            batch.push(job);
        }
        let inputs: Vec<&[u32]> = batch
            .iter()
            .flat_map(|job| job.inputs.iter().map(Vec::as_slice))
            .collect();
        // segments: the jobs' own (text pairs), segment 0 for the single texts of other jobs
        let longest = inputs.iter().map(|t| t.len()).max().unwrap_or(0);
        let zeros = vec![0u32; longest];
        let types: Option<Vec<&[u32]>> = batch.iter().any(|j| j.token_types.is_some()).then(|| {
            let mut all = Vec::with_capacity(inputs.len());
            for job in &batch {
                match &job.token_types {
                    Some(types) => all.extend(types.iter().map(Vec::as_slice)),
                    None => all.extend(job.inputs.iter().map(|t| &zeros[..t.len()])),
                }
            }
            all
        });
        let result =
            encoder.embed_with_segments(&inputs, types.as_deref(), pooling, normalize, &pool);
        match result {
            Ok(mut vectors) => {
                for job in batch {
                    let rest = vectors.split_off(job.inputs.len());
                    let _ = job.reply.send(Ok(vectors));
                    vectors = rest;
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// `input`: text(s) or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// The request body.
#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    input: Input,
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<u64>,
    /// Cut inputs longer than the context instead of refusing them.
    truncate: Option<bool>,
    #[allow(dead_code)]
    user: Option<String>,
}

/// Handles `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(&state, body).await?;
    let request: EmbeddingRequest = parse_body(&body)?;
    state.check_model(request.model.as_deref())?;
    let embedder = state.embedder()?;
    if embedder.pooling() == Pooling::Rank {
        return Err(ApiError::bad_request(
            "this server serves a reranker (pooling rank): use POST /v1/rerank",
        ));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                format!("`encoding_format` must be `float` or `base64`, not `{other}`"),
            ))
        }
    };
    if let Some(d) = request.dimensions {
        if d != embedder.dim() as u64 {
            return Err(ApiError::invalid_param(
                "dimensions",
                format!(
                    "this model gives {}-dimensional vectors and does not support `dimensions` = {d}",
                    embedder.dim()
                ),
            ));
        }
    }
    let truncate = request
        .truncate
        .unwrap_or(false)
        .then_some(embedder.context());
    let inputs = tokenize(&embedder.tokenizer, request.input, truncate)?;
    for (i, ids) in inputs.iter().enumerate() {
        check_context(embedder, "input", i, ids.len())?;
    }
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    let vectors = embedder.embed(inputs, None).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.config.model_id,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })))
}

/// A 400 (`context_length_exceeded`) when input `index` of `tokens` tokens is longer than the
/// model's context; `param` names the request field.
pub(crate) fn check_context(
    embedder: &Embedder,
    param: &'static str,
    index: usize,
    tokens: usize,
) -> Result<(), ApiError> {
    if tokens <= embedder.context() {
        return Ok(());
    }
    Err(ApiError {
        code: Some("context_length_exceeded"),
        ..ApiError::invalid_param(
            param,
            format!(
                "{param} {index} has {tokens} tokens, more than the model's context of {}",
                embedder.context()
            ),
        )
    })
}

/// The token ids of each input (texts with `[CLS]` … `[SEP]`; ids checked against the
/// vocabulary), cut to `truncate` tokens when given. An empty list is a 400.
fn tokenize(
    tokenizer: &Tokenizer,
    input: Input,
    truncate: Option<usize>,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let encode = |text: &str| {
        match truncate {
            Some(max) => tokenizer.encode_truncated(text, max).map(|(ids, _)| ids),
            None => tokenizer.encode(text),
        }
        .map_err(|e| ApiError::invalid_param("input", format!("tokenizing: {e}")))
    };
    let mut lists = match input {
        Input::Text(text) => vec![encode(&text)?],
        Input::Texts(texts) => texts.iter().map(|t| encode(t)).collect::<Result<_, _>>()?,
        Input::Tokens(ids) => vec![ids],
        Input::TokenLists(lists) => lists,
    };
    if let Some(max) = truncate {
        for ids in &mut lists {
            tokenizer.truncate_ids(ids, max);
        }
    }
    if lists.is_empty() || lists.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid_param(
            "input",
            "`input` must hold at least one non-empty text or token list",
        ));
    }
    let n = tokenizer.vocab_size();
    if let Some(&bad) = lists.iter().flatten().find(|&&id| id as usize >= n) {
        return Err(ApiError::invalid_param(
            "input",
            format!("token id {bad} is outside the vocabulary ({n} tokens)"),
        ));
    }
    Ok(lists)
}
