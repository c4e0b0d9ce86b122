//! `POST /v1/chat/completions`: renders the conversation with the model's chat template,
//! generates under the template's stop rules, and answers as `chat.completion` or a stream of
//! `chat.completion.chunk`s, with logprobs in the chat format.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bitnet_engine::{GenerateRequest, SequenceRequest, TokenLogprob};
use bitnet_tokenizer::chat::Message;
use bitnet_tokenizer::Tokenizer;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generation::{token_piece, usage_only_chunk, Delivery, Generation, Shape};
use crate::openai::{
    check_max_tokens, check_n, ChatCompletionRequest, ChatLogprobs, ChatTokenLogprob, TopLogprob,
    Usage, WithSampling, MAX_TOP_LOGPROBS,
};
use crate::state::{random_u64, unix_time, AppState};
use crate::{read_body, SYSTEM_FINGERPRINT};

const ENDPOINT: &str = "/v1/chat/completions";

/// Handles `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let body = read_body(&state, body).await?;
    let request = ChatCompletionRequest::parse(&body)?;
    state.check_model(request.model.as_deref())?;
    check_n(request.n)?;
    let backend = state.backend()?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid_param("messages", "`messages` is empty"));
    }
    let messages = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "developer" => "system",
                role => role,
            };
            Ok(Message::new(role, m.text()?))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let tokenizer = &backend.tokenizer;
    let prompt = backend
        .template
        .encode(tokenizer, &messages, true)
        .map_err(|e| ApiError::invalid_param("messages", format!("chat template: {e}")))?;
    let max_tokens = check_max_tokens("max_completion_tokens", request.max_completion_tokens)?
        .or(check_max_tokens("max_tokens", request.max_tokens)?)
        .unwrap_or(backend.context());
    let logprobs = match (request.logprobs.unwrap_or(false), request.top_logprobs) {
        (_, Some(n)) if n > MAX_TOP_LOGPROBS => {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                format!("`top_logprobs` must be at most {MAX_TOP_LOGPROBS}"),
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ))
        }
        (true, top) => Some(top.unwrap_or(0) as usize),
        (false, None) => None,
    };
    let mut stop = request.sampling.stop_strings()?;
    stop.extend(backend.template.stop_strings().iter().cloned());
    let sampling = request.sampling.params(
        tokenizer.vocab_size(),
        tokenizer.end_of_generation(),
        random_u64(),
    )?;
    let (delivery, include_usage) =
        Delivery::requested(request.stream, request.stream_options.as_ref());
    let stream = delivery == Delivery::Stream;
    let engine_request = SequenceRequest {
        generate: GenerateRequest {
            prompt,
            max_tokens,
            sampling,
            stop,
            stop_tokens: backend.template.stop_token_ids(tokenizer),
            show_special: false,
        },
        logprobs,
    };
    let generation =
        Generation::submit(&state, backend, ENDPOINT, arrived, engine_request, delivery)?;
    let shape = ChatShape {
        id: state.new_id("chatcmpl"),
        created: unix_time(),
        model: state.config.model_id.clone(),
        tokenizer: Arc::clone(tokenizer),
        logprobs: logprobs.is_some(),
        usage_in_chunks: include_usage,
    };
    generation.finish(shape, stream, include_usage).await
}

/// The chat format's JSON (see [`Shape`]).
struct ChatShape {
    id: String,
    created: u64,
    model: String,
    tokenizer: Arc<Tokenizer>,
    logprobs: bool,
    /// With `include_usage`, every chunk carries `"usage": null` but the last.
    usage_in_chunks: bool,
}

impl ChatShape {
    fn chat_logprobs(&self, logprobs: &[TokenLogprob]) -> ChatLogprobs {
        let entry = |id: u32, logprob: f32| {
            let (token, bytes) = token_piece(&self.tokenizer, id);
            TopLogprob {
                token,
                logprob,
                bytes,
            }
        };
        ChatLogprobs {
            content: logprobs
                .iter()
                .map(|lp| {
                    let main = entry(lp.token, lp.logprob);
                    ChatTokenLogprob {
                        token: main.token,
                        logprob: main.logprob,
                        bytes: main.bytes,
                        top_logprobs: lp.top.iter().map(|&(id, l)| entry(id, l)).collect(),
                    }
                })
                .collect(),
        }
    }

    fn chunk(&self, delta: Value, logprobs: Value, finish: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{
                "index": 0,
                "delta": delta,
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

impl Shape for ChatShape {
    fn opening_chunk(&mut self) -> Option<Value> {
        Some(self.chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
            None,
        ))
    }

    fn delta_chunk(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Value {
        let lp = if self.logprobs {
            json!(self.chat_logprobs(logprobs))
        } else {
            Value::Null
        };
        self.chunk(json!({ "content": text }), lp, None)
    }

    fn finish_chunk(&mut self, finish: &'static str) -> Value {
        self.chunk(json!({}), Value::Null, Some(finish))
    }

    fn usage_chunk(&mut self, usage: Usage) -> Value {
        usage_only_chunk(
            &self.id,
            "chat.completion.chunk",
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
        let lp = if self.logprobs {
            json!(self.chat_logprobs(logprobs))
        } else {
            Value::Null
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": lp,
                "finish_reason": finish,
            }],
            "usage": usage,
        })
    }
}
