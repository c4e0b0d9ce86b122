//! `POST /v1/chat/completions`: renders the conversation with the model's chat template,
//! generates under the template's stop rules, and answers as `chat.completion` or a stream of
//! `chat.completion.chunk`s, with logprobs in the chat format. With `tools`, an answer that is a
//! tool call comes back as `tool_calls` (streamed as OpenAI's `tool_calls` deltas) with
//! `finish_reason: "tool_calls"` (see [`crate::tools`]); `response_format` / `grammar` constrain
//! the text (see [`crate::structured`]).

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
use crate::structured;
use crate::tools::{self, ParsedCall, ToolFormat, ToolRequest};
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
    let tokenizer = &backend.tokenizer;
    let tools = request.tools.parse()?;
    let format = ToolFormat::detect(&backend.template, tokenizer);
    let mut messages: Vec<Message> = Vec::with_capacity(request.messages.len() + 1);
    for m in &request.messages {
        let role = match m.role.as_str() {
            "developer" => "system",
            role => role,
        };
        let message = tools::history_message(
            Message::new(role, m.text()?),
            m.tool_calls.as_ref(),
            m.tool_call_id.as_deref(),
            &messages,
            Some(&format),
        )?;
        messages.push(message);
    }
    if let Some(teaching) = tools.as_ref().and_then(|t| format.teaching(t)) {
        tools::add_teaching(&mut messages, teaching);
    }
    let prompt = backend
        .template
        .encode_with_tools(tokenizer, &messages, true, tools.as_ref().map(|t| &t.raw))
        .map_err(|e| ApiError::invalid_param("messages", format!("chat template: {e}")))?;
    let constraint = match (&tools, request.structured.spec()?) {
        (Some(t), Some((_, param))) if t.forced() => {
            return Err(ApiError::invalid_param(
                param,
                format!(
                    "`{param}` cannot be combined with a `tool_choice` that forces a tool call"
                ),
            ))
        }
        (Some(t), None) if t.forced() => Some(structured::compile(
            backend.constraints.as_ref(),
            &format.grammar(t),
            "tools",
        )?),
        (_, Some((spec, param))) => Some(structured::compile(
            backend.constraints.as_ref(),
            &spec,
            param,
        )?),
        _ => None,
    };
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
            // Tool-call markers may be control tokens ([TOOL_CALLS], <|python_tag|>).
            show_special: tools.is_some(),
            constraint,
        },
        logprobs,
        cache_prompt: request.cache_prompt.unwrap_or(true),
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
        tools: tools.map(|t| (t, format)),
        held: Held::Undecided(String::new(), Vec::new()),
    };
    generation.finish(shape, stream, include_usage).await
}

/// A whole answer that is a tool call finishes with `tool_calls` (a cut-off one keeps `length`).
fn calls_finish(finish: &'static str) -> &'static str {
    if finish == "stop" {
        "tool_calls"
    } else {
        finish
    }
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
    /// The request's tools and the format the template's model writes calls in.
    tools: Option<(ToolRequest, ToolFormat)>,
    /// Streamed text held back while it may be a tool call.
    held: Held,
}

/// What a streamed answer with tools has shown so far.
enum Held {
    /// Not yet known whether the answer is a tool call: its text and logprobs so far.
    Undecided(String, Vec<TokenLogprob>),
    /// Plain content, streamed as it comes.
    Content,
    /// A tool call, held until it is whole.
    Call(String),
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

    /// A chunk of plain content.
    fn content_chunk(&self, text: &str, logprobs: &[TokenLogprob]) -> Value {
        let lp = if self.logprobs {
            json!(self.chat_logprobs(logprobs))
        } else {
            Value::Null
        };
        self.chunk(json!({ "content": text }), lp, None)
    }

    /// The tool calls `text` makes, when the request has tools and the text is a whole call.
    fn parse_calls(&self, text: &str) -> Option<Vec<ParsedCall>> {
        let (tools, format) = self.tools.as_ref()?;
        if format.opens_call(text) != Some(true) {
            return None;
        }
        format.parse(text, tools)
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

    fn delta_chunks(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Vec<Value> {
        let Some((_, format)) = &self.tools else {
            return vec![self.content_chunk(text, logprobs)];
        };
        match &mut self.held {
            Held::Content => vec![self.content_chunk(text, logprobs)],
            Held::Call(held) => {
                held.push_str(text);
                Vec::new()
            }
            Held::Undecided(held, held_logprobs) => {
                held.push_str(text);
                held_logprobs.extend_from_slice(logprobs);
                match format.opens_call(held) {
                    None => Vec::new(),
                    Some(true) => {
                        self.held = Held::Call(std::mem::take(held));
                        Vec::new()
                    }
                    Some(false) => {
                        let (text, lps) = (std::mem::take(held), std::mem::take(held_logprobs));
                        self.held = Held::Content;
                        vec![self.content_chunk(&text, &lps)]
                    }
                }
            }
        }
    }

    fn finish_chunks(&mut self, finish: &'static str) -> Vec<Value> {
        let mut out = Vec::new();
        let held = std::mem::replace(&mut self.held, Held::Content);
        let mut finish = finish;
        match held {
            Held::Content => {}
            Held::Undecided(text, logprobs) => {
                if !text.is_empty() {
                    out.push(self.content_chunk(&text, &logprobs));
                }
            }
            Held::Call(text) => match self.parse_calls(&text) {
                Some(calls) => {
                    for (index, call) in calls.iter().enumerate() {
                        let opening = json!({"tool_calls": [{
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }]});
                        out.push(self.chunk(opening, Value::Null, None));
                        let arguments = json!({"tool_calls": [{
                            "index": index,
                            "function": {"arguments": call.arguments},
                        }]});
                        out.push(self.chunk(arguments, Value::Null, None));
                    }
                    finish = calls_finish(finish);
                }
                None => out.push(self.content_chunk(&text, &[])),
            },
        }
        out.push(self.chunk(json!({}), Value::Null, Some(finish)));
        out
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
        let (message, finish) = match self.parse_calls(text) {
            Some(calls) => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": calls.iter().map(ParsedCall::message_json).collect::<Vec<_>>(),
                }),
                calls_finish(finish),
            ),
            None => (json!({"role": "assistant", "content": text}), finish),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": lp,
                "finish_reason": finish,
            }],
            "usage": usage,
        })
    }
}
