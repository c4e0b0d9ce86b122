//! What both generation endpoints share: submitting a request to the batch engine with a sink
//! that feeds a channel (a closed channel, i.e. a gone client, cancels the sequence), then either
//! collecting the whole answer or streaming it as server-sent events (`data: {...}` chunks, then
//! `data: [DONE]`). Each endpoint supplies its JSON shapes through [`Shape`]. An answer counts as
//! in flight for the graceful shutdown until it is over; when the shutdown grace period runs
//! out it ends with a 503 (streamed: an error event, then `[DONE]`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bitnet_engine::{EventSink, SequenceEvent, SequenceRequest, SequenceSummary, TokenLogprob};
use bitnet_tokenizer::Tokenizer;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::drain::{InFlight, Phase};
use crate::error::ApiError;
use crate::openai::{finish_reason, StreamOptions, Usage};
use crate::state::{AppState, Backend};

/// The last chunk of a stream with `include_usage`: no choices, the usage (the same for both
/// endpoints but for the object name).
pub fn usage_only_chunk(id: &str, object: &str, created: u64, model: &str, usage: Usage) -> Value {
    serde_json::json!({
        "id": id,
        "object": object,
        "created": created,
        "model": model,
        "system_fingerprint": crate::SYSTEM_FINGERPRINT,
        "choices": [],
        "usage": usage,
    })
}

/// A token's text as shown in logprobs (special tokens by their text) and its bytes.
pub fn token_piece(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer.token_bytes(id, true).unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// The JSON an endpoint answers with.
pub trait Shape: Send + 'static {
    /// The first chunk of a stream, if the endpoint has one (chat: the assistant role).
    fn opening_chunk(&mut self) -> Option<Value>;
    /// The chunks carrying new text and the logprobs of the tokens that produced it (none while
    /// the shape holds text back, e.g. what may be a tool call).
    fn delta_chunks(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Vec<Value>;
    /// The chunks that end the stream's choice: anything held back, then the finish reason.
    fn finish_chunks(&mut self, finish: &'static str) -> Vec<Value>;
    /// The chunk carrying usage (`stream_options.include_usage`).
    fn usage_chunk(&mut self, usage: Usage) -> Value;
    /// The whole (non-streamed) response.
    fn response(
        &mut self,
        text: &str,
        logprobs: &[TokenLogprob],
        finish: &'static str,
        usage: Usage,
    ) -> Value;
}

/// How the events of a request reach its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each event as it happens (streamed answers).
    Stream,
    /// All at the end (whole answers).
    Whole,
}

impl Delivery {
    /// The delivery a request's `stream` asks for, and whether its streamed chunks carry usage
    /// (`stream_options.include_usage`, meaningful only when streaming).
    pub fn requested(stream: Option<bool>, options: Option<&StreamOptions>) -> (Delivery, bool) {
        if stream.unwrap_or(false) {
            let usage = options.and_then(|o| o.include_usage).unwrap_or(false);
            (Delivery::Stream, usage)
        } else {
            (Delivery::Whole, false)
        }
    }
}

/// One generation request on its way through the engine.
pub struct Generation {
    /// Declared (so dropped) before `state`: if this holds the last reference to the state,
    /// dropping it stops the engine, which waits until its sequences see their receivers gone.
    events: UnboundedReceiver<SequenceEvent>,
    state: Arc<AppState>,
    /// Counts this answer as in flight until it is dropped (the graceful shutdown waits).
    _in_flight: InFlight,
    endpoint: &'static str,
    arrived: Instant,
    submitted: Instant,
    delivery: Delivery,
    /// Tokens that end generation (not reported in logprobs).
    end_tokens: Vec<u32>,
    /// Text shown before the generated text (completions' `echo`).
    prefix: String,
}

impl Generation {
    /// Submits `request` to the engine (refusals become errors at once: 400, 429, 503).
    pub fn submit(
        state: &Arc<AppState>,
        backend: &Backend,
        endpoint: &'static str,
        arrived: Instant,
        request: SequenceRequest,
        delivery: Delivery,
    ) -> Result<Generation, ApiError> {
        let mut end_tokens = request.generate.stop_tokens.clone();
        end_tokens.extend_from_slice(backend.tokenizer.end_of_generation());
        let (sender, events) = unbounded_channel();
        let sink: EventSink = match delivery {
            Delivery::Stream => Box::new(move |event| sender.send(event).is_ok()),
            Delivery::Whole => {
                // Hold the events until the end: one wake-up per answer instead of one per
                // token. A closed channel (the client left) still cancels at once.
                let mut held = Vec::new();
                Box::new(move |event| {
                    let last =
                        matches!(event, SequenceEvent::Finished(_) | SequenceEvent::Failed(_));
                    held.push(event);
                    if last {
                        for event in held.drain(..) {
                            if sender.send(event).is_err() {
                                return false;
                            }
                        }
                    }
                    !sender.is_closed()
                })
            }
        };
        backend.engine.submit(request, sink)?;
        Ok(Generation {
            events,
            state: Arc::clone(state),
            _in_flight: state.drain.hold(),
            endpoint,
            arrived,
            submitted: Instant::now(),
            delivery,
            end_tokens,
            prefix: String::new(),
        })
    }

    /// Shows `prefix` before the generated text.
    pub fn with_prefix(mut self, prefix: String) -> Self {
        self.prefix = prefix;
        self
    }

    /// The next event, with a token event's logprob dropped for end-of-generation tokens and
    /// the time to first token recorded; `None` when the engine dropped the request or the
    /// shutdown grace period ran out (see [`Generation::ended_early`]).
    async fn next(&mut self, seen_token: &mut bool) -> Option<SequenceEvent> {
        let mut event = tokio::select! {
            event = self.events.recv() => event?,
            () = self.state.drain.cancelled() => return None,
        };
        if let SequenceEvent::Token(token) = &mut event {
            if !*seen_token && self.delivery == Delivery::Stream {
                *seen_token = true;
                self.state
                    .metrics
                    .observe_first_token(self.endpoint, self.arrived.elapsed().as_secs_f64());
            }
            if self.end_tokens.contains(&token.token) {
                token.logprob = None;
            }
        }
        Some(event)
    }

    /// Why an answer ended without its last event: the shutdown cut it off, or the engine
    /// dropped it.
    fn ended_early(&self) -> ApiError {
        if self.state.drain.phase() == Phase::Cancelling {
            ApiError::cut_off_by_shutdown()
        } else {
            ApiError::internal("the engine dropped the request")
        }
    }

    fn finished(&self) {
        self.state
            .metrics
            .observe_latency(self.endpoint, self.arrived.elapsed().as_secs_f64());
    }

    /// Answers as the client asked: an SSE stream (with a usage chunk before `[DONE]` when
    /// `include_usage`) or one JSON body.
    pub async fn finish<S: Shape>(
        self,
        shape: S,
        stream: bool,
        include_usage: bool,
    ) -> Result<Response, ApiError> {
        if stream {
            Ok(self.stream(shape, include_usage))
        } else {
            self.respond(shape).await
        }
    }

    /// Waits for the whole answer and shapes it.
    pub async fn respond<S: Shape>(mut self, mut shape: S) -> Result<Response, ApiError> {
        let mut text = std::mem::take(&mut self.prefix);
        let mut logprobs = Vec::new();
        let mut seen_token = false;
        let summary: SequenceSummary = loop {
            match self.next(&mut seen_token).await {
                Some(SequenceEvent::Started { .. }) => {}
                Some(SequenceEvent::Token(token)) => {
                    text.push_str(&token.text);
                    logprobs.extend(token.logprob);
                }
                Some(SequenceEvent::Finished(summary)) => break summary,
                Some(SequenceEvent::Failed(message)) => return Err(ApiError::internal(message)),
                None => return Err(self.ended_early()),
            }
        };
        self.finished();
        let first_token = (self.submitted - self.arrived).as_secs_f64()
            + summary.queued_seconds
            + summary.prefill_seconds;
        self.state
            .metrics
            .observe_first_token(self.endpoint, first_token);
        text.push_str(&summary.text);
        let usage = usage(&summary);
        let mut body = shape.response(&text, &logprobs, finish_reason(summary.finish), usage);
        body["timings"] = timings(&summary);
        Ok(axum::Json(body).into_response())
    }

    /// Streams the answer as server-sent events. Dropping the stream (the client went away)
    /// closes the channel, which cancels the sequence in the engine.
    pub fn stream<S: Shape>(mut self, shape: S, include_usage: bool) -> Response {
        let prefix = std::mem::take(&mut self.prefix);
        let start = StreamState {
            generation: self,
            shape,
            include_usage,
            prefix: Some(prefix),
            seen_token: false,
            done: false,
        };
        let events = stream::unfold(start, |mut s| async move {
            let events = s.advance().await?;
            Some((stream::iter(events), s))
        })
        .flatten()
        .map(Ok::<Event, Infallible>);
        Sse::new(events).into_response()
    }
}

/// The state of one streamed answer.
struct StreamState<S> {
    generation: Generation,
    shape: S,
    include_usage: bool,
    /// The opening (role chunk and echoed prefix) still to send.
    prefix: Option<String>,
    seen_token: bool,
    done: bool,
}

/// The `usage` of a finished sequence.
fn usage(summary: &SequenceSummary) -> Usage {
    Usage::new(
        summary.prompt_tokens,
        summary.cached_tokens,
        summary.completion_tokens,
    )
}

/// llama.cpp's `timings` object (an extension OpenAI clients ignore): time in the queue, prompt
/// evaluation (admission to first token; `prompt_n` counts the tokens evaluated, `cache_n` those
/// taken from the prompt cache) and generation after the first token.
fn timings(summary: &SequenceSummary) -> Value {
    let generated = summary.completion_tokens.saturating_sub(1);
    let evaluated = summary.prompt_tokens - summary.cached_tokens;
    let per_second = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    serde_json::json!({
        "queued_ms": summary.queued_seconds * 1e3,
        "cache_n": summary.cached_tokens,
        "prompt_n": evaluated,
        "prompt_ms": summary.prefill_seconds * 1e3,
        "prompt_per_second": per_second(evaluated, summary.prefill_seconds),
        "predicted_n": generated,
        "predicted_ms": summary.decode_seconds * 1e3,
        "predicted_per_second": per_second(generated, summary.decode_seconds),
    })
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

impl<S: Shape> StreamState<S> {
    /// The next events to send; `None` once the stream is over.
    async fn advance(&mut self) -> Option<Vec<Event>> {
        if self.done {
            return None;
        }
        if let Some(prefix) = self.prefix.take() {
            let mut out: Vec<Event> = self.shape.opening_chunk().iter().map(data).collect();
            if !prefix.is_empty() {
                out.extend(self.shape.delta_chunks(&prefix, &[]).iter().map(data));
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
        loop {
            match self.generation.next(&mut self.seen_token).await {
                Some(SequenceEvent::Started { .. }) => {}
                Some(SequenceEvent::Token(token)) => {
                    let logprobs: Vec<TokenLogprob> = token.logprob.into_iter().collect();
                    if !token.text.is_empty() || !logprobs.is_empty() {
                        let chunks = self.shape.delta_chunks(&token.text, &logprobs);
                        if !chunks.is_empty() {
                            return Some(chunks.iter().map(data).collect());
                        }
                    }
                }
                Some(SequenceEvent::Finished(summary)) => {
                    self.done = true;
                    self.generation.finished();
                    let mut out = Vec::new();
                    if !summary.text.is_empty() {
                        out.extend(self.shape.delta_chunks(&summary.text, &[]).iter().map(data));
                    }
                    out.extend(
                        self.shape
                            .finish_chunks(finish_reason(summary.finish))
                            .iter()
                            .map(data),
                    );
                    if self.include_usage {
                        let usage = usage(&summary);
                        out.push(data(&self.shape.usage_chunk(usage)));
                    }
                    out.push(Event::default().data("[DONE]"));
                    return Some(out);
                }
                Some(SequenceEvent::Failed(message)) => {
                    self.done = true;
                    return Some(self.error_events(ApiError::internal(message)));
                }
                None => {
                    self.done = true;
                    return Some(self.error_events(self.generation.ended_early()));
                }
            }
        }
    }

    fn error_events(&self, error: ApiError) -> Vec<Event> {
        let body = serde_json::to_value(error.body()).unwrap_or(Value::Null);
        vec![data(&body), Event::default().data("[DONE]")]
    }
}
