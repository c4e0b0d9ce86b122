//! `POST /v1/completions`: the legacy text completion. One prompt (text, tokenized with the
//! model's special tokens, or token ids as given), answered as `text_completion` (streamed or
//! not), with logprobs in the legacy format (`tokens`, `token_logprobs`, `top_logprobs`,
//! `text_offset`) and optional `echo` of the prompt; `response_format` / `grammar` constrain the
//! text (see [`crate::structured`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bitnet_engine::{GenerateRequest, SequenceRequest, TokenLogprob};
use bitnet_tokenizer::Tokenizer;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generation::{token_piece, usage_only_chunk, Delivery, Generation, Shape};
use crate::openai::{
    check_max_tokens, check_n, CompletionRequest, LegacyLogprobs, Prompt, Usage, WithSampling,
    MAX_LEGACY_LOGPROBS,
};
use crate::state::{random_u64, unix_time, AppState};
use crate::structured;
use crate::{read_body, SYSTEM_FINGERPRINT};

const ENDPOINT: &str = "/v1/completions";

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

/// Handles `POST /v1/completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let body = read_body(&state, body).await?;
    let request = CompletionRequest::parse(&body)?;
    state.check_model(request.model.as_deref())?;
    check_n(request.n)?;
    if request.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::invalid_param("best_of", "`best_of` must be 1"));
    }
    if request.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_param(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported",
        ));
    }
    let backend = state.backend()?;
    let tokenizer = &backend.tokenizer;
    let (prompt, prompt_text) = match request.prompt.single()? {
        Prompt::Text(text) => {
            let ids = tokenizer
                .encode(&text)
                .map_err(|e| ApiError::invalid_param("prompt", format!("tokenizing: {e}")))?;
            (ids, text)
        }
        Prompt::Tokens(ids) => {
            let text = tokenizer
                .decode(&ids, false)
                .map_err(|e| ApiError::invalid_param("prompt", format!("prompt token ids: {e}")))?;
            (ids, text)
        }
    };
    let logprobs = match request.logprobs {
        Some(n) if n > MAX_LEGACY_LOGPROBS => {
            return Err(ApiError::invalid_param(
                "logprobs",
                format!("`logprobs` must be at most {MAX_LEGACY_LOGPROBS}"),
            ))
        }
        other => other.map(|n| n as usize),
    };
    let echo = request.echo.unwrap_or(false);
    if echo && logprobs.is_some() {
        return Err(ApiError::invalid_param(
            "echo",
            "`echo` with `logprobs` (prompt logprobs) is not supported",
        ));
    }
    let max_tokens =
        check_max_tokens("max_tokens", request.max_tokens)?.unwrap_or(DEFAULT_MAX_TOKENS);
    let sampling = request.sampling.params(
        tokenizer.vocab_size(),
        tokenizer.end_of_generation(),
        random_u64(),
    )?;
    let (delivery, include_usage) =
        Delivery::requested(request.stream, request.stream_options.as_ref());
    let stream = delivery == Delivery::Stream;
    let constraint = match request.structured.spec()? {
        Some((spec, param)) => Some(structured::compile(
            backend.constraints.as_ref(),
            &spec,
            param,
        )?),
        None => None,
    };
    let engine_request = SequenceRequest {
        generate: GenerateRequest {
            prompt,
            max_tokens,
            sampling,
            stop: request.sampling.stop_strings()?,
            stop_tokens: Vec::new(),
            show_special: false,
            constraint,
        },
        logprobs,
        cache_prompt: request.cache_prompt.unwrap_or(true),
    };
    let mut generation =
        Generation::submit(&state, backend, ENDPOINT, arrived, engine_request, delivery)?;
    let prefix = if echo { prompt_text } else { String::new() };
    let shape = CompletionShape {
        id: state.new_id("cmpl"),
        created: unix_time(),
        model: state.config.model_id.clone(),
        tokenizer: Arc::clone(tokenizer),
        logprobs: logprobs.is_some(),
        offset: prefix.chars().count(),
        usage_in_chunks: include_usage,
    };
    generation = generation.with_prefix(prefix);
    generation.finish(shape, stream, include_usage).await
}

/// The legacy completions JSON (see [`Shape`]).
struct CompletionShape {
    id: String,
    created: u64,
    model: String,
    tokenizer: Arc<Tokenizer>,
    logprobs: bool,
    /// Characters of text before the next token (for `text_offset`).
    offset: usize,
    usage_in_chunks: bool,
}

impl CompletionShape {
    fn legacy_logprobs(&mut self, logprobs: &[TokenLogprob]) -> LegacyLogprobs {
        let mut out = LegacyLogprobs::default();
        for lp in logprobs {
            let (token, _) = token_piece(&self.tokenizer, lp.token);
            out.text_offset.push(self.offset);
            self.offset += token.chars().count();
            out.tokens.push(token);
            out.token_logprobs.push(lp.logprob);
            let mut top = BTreeMap::new();
            for &(id, l) in &lp.top {
                top.insert(token_piece(&self.tokenizer, id).0, l);
            }
            out.top_logprobs.push(top);
        }
        out
    }

    fn logprobs_value(&mut self, logprobs: &[TokenLogprob]) -> Value {
        if self.logprobs {
            json!(self.legacy_logprobs(logprobs))
        } else {
            Value::Null
        }
    }

    fn chunk(&self, text: &str, logprobs: Value, finish: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{
                "text": text,
                "index": 0,
                "logprobs": logprobs,
                "finish_reason": finish,
            }],
        });
        if self.usage_in_chunks {
            chunk["usage"] = Value::Null;
        }
        chunk
    }
}

impl Shape for CompletionShape {
    fn opening_chunk(&mut self) -> Option<Value> {
        None
    }

    fn delta_chunks(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Vec<Value> {
        let lp = self.logprobs_value(logprobs);
        vec![self.chunk(text, lp, None)]
    }

    fn finish_chunks(&mut self, finish: &'static str) -> Vec<Value> {
        vec![self.chunk("", Value::Null, Some(finish))]
    }

    fn usage_chunk(&mut self, usage: Usage) -> Value {
        usage_only_chunk(
            &self.id,
            "text_completion",
            self.created,
            &self.model,
            usage,
        )
    }

    fn response(
        &mut self,
        text: &str,
        logprobs: &[TokenLogprob],
        finish: &'static str,
        usage: Usage,
    ) -> Value {
        // A whole answer is the one chunk of its text, with the usage.
        let lp = self.logprobs_value(logprobs);
        let mut whole = self.chunk(text, lp, Some(finish));
        whole["usage"] = json!(usage);
        whole
    }
}
