//! `POST /v1/rerank` (and `/rerank`): a cross-encoder's relevance scores in the shape
//! llama-server and Jina use. The request has a `query` and `documents` (strings); each pair is
//! tokenized as `[CLS] query [SEP] document [SEP]` with segment 0 for the query part and 1 for the
//! document part, run by the [`Embedder`](crate::embeddings::Embedder)'s worker (batched with
//! other requests) through the model's classification head (rank pooling), and answered as
//! `results`: `{index, relevance_score}` sorted by score, highest first, cut to `top_n` when
//! given, each with `document: {text}` when `return_documents` is true. `relevance_score` is the
//! head's raw output (a logit, as llama-server gives it). A pair longer than the model's context
//! is a 400 (`context_length_exceeded`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Json;
use bitnet_model::Pooling;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::embeddings::check_context;
use crate::error::ApiError;
use crate::openai::parse_body;
use crate::read_body;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
struct RerankRequest {
    model: Option<String>,
    query: String,
    documents: Vec<String>,
    top_n: Option<usize>,
    return_documents: Option<bool>,
}

/// Handles `POST /v1/rerank`.
pub async fn rerank(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(&state, body).await?;
    let request: RerankRequest = parse_body(&body)?;
    state.check_model(request.model.as_deref())?;
    let embedder = state.embedder()?;
    if embedder.pooling() != Pooling::Rank {
        return Err(ApiError::bad_request(format!(
            "this server's model is not a reranker (pooling {}): /v1/rerank needs a model with \
             pooling_type rank (a cross-encoder with a classification head)",
            embedder.pooling().name()
        )));
    }
    if request.documents.is_empty() {
        return Err(ApiError::invalid_param(
            "documents",
            "`documents` must hold at least one text",
        ));
    }
    if request.top_n == Some(0) {
        return Err(ApiError::invalid_param(
            "top_n",
            "`top_n` must be at least 1",
        ));
    }
    let mut inputs = Vec::with_capacity(request.documents.len());
    let mut types = Vec::with_capacity(request.documents.len());
    for (i, document) in request.documents.iter().enumerate() {
        let pair = embedder
            .tokenizer
            .encode_pair(&request.query, document)
            .map_err(|e| ApiError::invalid_param("documents", format!("tokenizing: {e}")))?;
        check_context(embedder, "documents", i, pair.ids.len())?;
        inputs.push(pair.ids);
        types.push(pair.segments);
    }
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    let scores = embedder.embed(inputs, Some(types)).await?;
    let mut ranked: Vec<(usize, f32)> = scores.iter().enumerate().map(|(i, v)| (i, v[0])).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(request.top_n.unwrap_or(ranked.len()));
    let with_text = request.return_documents.unwrap_or(false);
    let results: Vec<Value> = ranked
        .into_iter()
        .map(|(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if with_text {
                r["document"] = json!({"text": request.documents[index]});
            }
            r
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "model": state.config.model_id,
        "results": results,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })))
}
