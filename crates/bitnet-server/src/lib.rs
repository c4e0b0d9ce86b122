//! bitnet-server: an OpenAI-compatible HTTP server over the continuous-batching engine, and the
//! web chat page it serves at `/`.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions` (streamed as server-sent events
//! or not), `GET /v1/models`, `GET /health` (503 `loading` until the model is ready),
//! `GET /metrics` (Prometheus text), `POST /tokenize` and `POST /detokenize` (llama.cpp's
//! shapes), and `GET /` (the page). Errors use OpenAI's JSON error shape. With an API key set,
//! everything but `/` and `/health` needs `Authorization: Bearer <key>`. Bodies larger than the
//! configured limit get 413. Nothing in a request names a file. Both generation endpoints take
//! `response_format` and a `grammar` extension (constrained decoding); chat takes OpenAI's
//! `tools` / `tool_choice` and answers `tool_calls`. A server started with an encoder model
//! (`bitnet serve --embeddings`) answers `POST /v1/embeddings` instead ([`embeddings`]), and one
//! started with a reranker (`pooling_type` rank) answers `POST /v1/rerank` and `/rerank`
//! ([`rerank`]).
//!
//! Shutdown is graceful (see [`drain`]): on Ctrl-C or SIGTERM the server stops admitting requests
//! (503 `server_shutting_down`; `/health` answers 503 `draining`), lets the answers in flight
//! finish within the configured grace period, ends the rest with an error event, and returns.
//!
//! The server binds before the model loads: start it with [`AppState::new`] and [`serve`], and
//! call [`AppState::set_ready`] once the model is loaded.

#![forbid(unsafe_code)]

pub mod chat;
pub mod completions;
pub mod drain;
pub mod embeddings;
pub mod error;
pub mod generation;
pub mod metrics;
pub mod openai;
pub mod rerank;
pub mod state;
pub mod structured;
pub mod tools;

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitnet_tokenizer::EncodeOptions;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

pub use embeddings::Embedder;
pub use error::ApiError;
pub use state::{
    AppState, Backend, Loaded, ServerConfig, DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
};

/// `system_fingerprint` of every response.
pub const SYSTEM_FINGERPRINT: &str = concat!("bitnet-rs-", env!("CARGO_PKG_VERSION"));

/// After the grace period: how long the answers being ended get to send their error event, and
/// connections to flush and close, before the server returns regardless.
pub const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// The chat page, embedded in the binary.
pub const CHAT_PAGE: &str = include_str!("../static/index.html");

/// The router with every route, the API-key check, admission (refused while draining), the body
/// limit and the request counter.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/rerank", post(rerank::rerank))
        .route("/rerank", post(rerank::rerank))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), admit))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_api_key,
        ));
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            refuse_declared_oversize,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_requests,
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then drains (see [`drain`]):
/// new requests get 503 while the answers in flight run on for the configured grace period;
/// those still running then end with an error, and connections get [`SHUTDOWN_FLUSH`] to send
/// their last bytes. Each connection is HTTP/1.1 with the configured header read timeout (a
/// client that never finishes its headers is dropped).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(Arc::clone(&state));
    let read_timeout = state.config.read_timeout;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let serve_connection = |accepted: std::io::Result<(tokio::net::TcpStream, _)>| {
        let app = app.clone();
        let graceful = &graceful;
        async move {
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors or a connection reset before accept: wait, go on.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => serve_connection(accepted).await,
            () = &mut shutdown => break,
        }
    }
    let drain = &state.drain;
    drain.begin();
    let grace = state.config.shutdown_grace;
    eprintln!(
        "shutting down: {} request(s) in flight get up to {:.1} s to finish; new requests get 503",
        drain.in_flight(),
        grace.as_secs_f64()
    );
    // Keep accepting while draining, so that clients (and load balancers' health checks) get a
    // clear 503 rather than a refused connection.
    let mut deadline = std::pin::pin!(tokio::time::sleep(grace));
    let mut cut_off = false;
    loop {
        tokio::select! {
            () = drain.idle() => break,
            () = &mut deadline => {
                if cut_off {
                    eprintln!(
                        "shutting down: {} answer(s) did not end in time; closing",
                        drain.in_flight()
                    );
                    break;
                }
                cut_off = true;
                eprintln!(
                    "shutting down: grace period over; ending {} answer(s) with an error",
                    drain.in_flight()
                );
                drain.cancel_in_flight();
                deadline.set(tokio::time::sleep(SHUTDOWN_FLUSH));
            }
            accepted = listener.accept() => serve_connection(accepted).await,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(SHUTDOWN_FLUSH) => {},
    }
    eprintln!("shut down");
    Ok(())
}

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("loading the model: {0}")]
    Load(String),
}

/// Runs a server to completion: binds `addr` (`host:port`; port 0 picks a free one), tells
/// `on_bound` the bound address, then serves while `load` runs on a background thread (the
/// server answers 503 until it returns). Stops on Ctrl-C or SIGTERM, or with
/// [`ServeError::Load`] when `load` fails; the answers in flight first get the configured
/// grace period to finish (see [`serve`]).
pub fn run(
    addr: &str,
    config: ServerConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
    load: impl FnOnce() -> Result<Loaded, String> + Send + 'static,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let bound = listener.local_addr().map_err(ServeError::Serve)?;
        on_bound(bound);
        let state = AppState::new(config);
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
        let loader_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("bitnet-load".into())
            .spawn(move || match load() {
                // Only this thread sets the model, once.
                Ok(Loaded::Generator(backend)) => {
                    let _ = loader_state.set_ready(*backend);
                }
                Ok(Loaded::Embedder(embedder)) => {
                    let _ = loader_state.set_embedder(*embedder);
                }
                Err(e) => {
                    let _ = failed_tx.send(e);
                }
            })
            .map_err(ServeError::Runtime)?;
        let failure = Arc::new(std::sync::Mutex::new(None::<String>));
        let failure_seen = Arc::clone(&failure);
        let stop = async move {
            tokio::select! {
                () = shutdown_signal() => {},
                Ok(message) = failed_rx => {
                    *failure_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
                },
            }
        };
        serve(listener, state, stop)
            .await
            .map_err(ServeError::Serve)?;
        let failed = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        match failed {
            Some(message) => Err(ServeError::Load(message)),
            None => Ok(()),
        }
    })
}

/// Reads a request body within the configured limit and time: 413 when it is too large, 408
/// when the client is too slow, 400 when the connection fails.
pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, state.config.body_limit);
    let collected = tokio::time::timeout(state.config.read_timeout, limited.collect())
        .await
        .map_err(|_| ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            kind: "invalid_request_error",
            message: "the request body did not arrive in time".into(),
            param: None,
            code: Some("request_timeout"),
        })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// The 413 answer for a body over the limit.
fn too_large() -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "invalid_request_error",
        message: "the request body is larger than the server accepts".into(),
        param: None,
        code: Some("request_too_large"),
    }
}

/// Answers 413 at once when `Content-Length` already says the body is over the limit (without
/// waiting for a body that may never come).
async fn refuse_declared_oversize(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.body_limit as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

/// Counts every answered request by endpoint and status.
async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = metrics::endpoint_label(request.uri().path());
    let response = next.run(request).await;
    state
        .metrics
        .count_request(endpoint, response.status().as_u16());
    response
}

/// Admits a request while serving (it is counted until its answer is over, see [`drain`]), or
/// answers 503 while draining.
async fn admit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match state.drain.admit() {
        Ok(_in_flight) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// With an API key configured, refuses requests without `Authorization: Bearer <key>`.
async fn require_api_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            None => {
                return ApiError::unauthorized(
                    "missing API key: send `Authorization: Bearer <key>`",
                )
                .into_response()
            }
            Some(given) if !same_secret(given.as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("incorrect API key").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page() -> Html<&'static str> {
    Html(CHAT_PAGE)
}

/// `GET /health`: 200 `ok` once the model is loaded; 503 `loading` before, 503 `draining`
/// after a shutdown signal (so load balancers stop routing here).
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let unavailable = |status: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status })),
        )
            .into_response()
    };
    if state.drain.phase() != drain::Phase::Serving {
        unavailable("draining")
    } else if state.is_ready() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        unavailable("loading")
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let entry = openai::ModelEntry {
        id: state.config.model_id.clone(),
        object: "model",
        created: state.started,
        owned_by: "bitnet-rs",
    };
    Json(json!({"object": "list", "data": [entry]})).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.backend().ok().map(|b| b.engine.stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(stats),
    )
        .into_response()
}

/// `POST /tokenize` body (llama.cpp's shape).
#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default)]
    with_pieces: bool,
}

async fn tokenize(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let request: TokenizeRequest = openai::parse_body(&read_body(&state, body).await?)?;
    let tokenizer = &state.backend()?.tokenizer;
    let ids = tokenizer
        .encode_with(
            &request.content,
            EncodeOptions {
                add_special: request.add_special,
                parse_special: true,
            },
        )
        .map_err(|e| ApiError::invalid_param("content", format!("tokenizing: {e}")))?;
    let tokens = if request.with_pieces {
        ids.iter()
            .map(|&id| json!({"id": id, "piece": generation::token_piece(tokenizer, id).0}))
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect::<Vec<_>>()
    };
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `POST /detokenize` body (llama.cpp's shape).
#[derive(Debug, Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

async fn detokenize(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let request: DetokenizeRequest = openai::parse_body(&read_body(&state, body).await?)?;
    let tokenizer = &state.backend()?.tokenizer;
    let content = tokenizer
        .decode(&request.tokens, false)
        .map_err(|e| ApiError::invalid_param("tokens", e.to_string()))?;
    Ok(Json(json!({ "content": content })).into_response())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Resolves when the process gets Ctrl-C (or SIGTERM on Unix).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
