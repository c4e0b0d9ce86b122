//! OpenAI's request and response shapes for `/v1/chat/completions` and `/v1/completions`, and
//! the checks that turn a parsed request into the engine's settings. Fields this server does not
//! use are ignored (clients send many); fields it cannot honour (`n` other than 1, several
//! prompts, image parts) are refused with a 400 naming the field. Structured output and tools
//! have their own modules ([`crate::structured`], [`crate::tools`]).

use std::collections::BTreeMap;

use bitnet_engine::SamplingParams;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::structured::StructuredFields;
use crate::tools::ToolFields;

/// Parses a JSON request body into `T`, reporting the field at fault (`param`) on a type error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    from_json(&parse_json(body)?)
}

/// Parses a request body as JSON (400 when it is not).
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// Reads `T` out of a parsed body, reporting the field at fault (`param`) on a type error.
pub fn from_json<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid request: {inner}"))
        } else {
            ApiError::invalid_param(&path, format!("invalid request: field `{path}`: {inner}"))
        }
    })
}

/// A request with fields read from the same body into their own structs (sampling, structured
/// output, tools): the struct and those parts read from one parsed body.
pub trait WithSampling: serde::de::DeserializeOwned {
    /// Reads the parts kept in their own structs out of the parsed body.
    fn set_parts(&mut self, value: &serde_json::Value) -> Result<(), ApiError>;

    /// Parses a request body.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value = parse_json(body)?;
        let mut request: Self = from_json(&value)?;
        request.set_parts(&value)?;
        Ok(request)
    }
}

impl WithSampling for ChatCompletionRequest {
    fn set_parts(&mut self, value: &serde_json::Value) -> Result<(), ApiError> {
        self.sampling = from_json(value)?;
        self.structured = from_json(value)?;
        self.tools = from_json(value)?;
        Ok(())
    }
}

impl WithSampling for CompletionRequest {
    fn set_parts(&mut self, value: &serde_json::Value) -> Result<(), ApiError> {
        self.sampling = from_json(value)?;
        self.structured = from_json(value)?;
        Ok(())
    }
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Sampling fields common to both endpoints (OpenAI's, plus llama.cpp's `top_k`, `min_p`,
/// `repeat_penalty`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub seed: Option<i64>,
    pub logit_bias: Option<BTreeMap<String, f32>>,
    pub stop: Option<StopField>,
    /// llama.cpp's `ignore_eos`: the end-of-generation tokens are never sampled.
    pub ignore_eos: Option<bool>,
}

/// Most stop strings per request.
pub const MAX_STOP_STRINGS: usize = 16;
/// Most `top_logprobs` in the chat format (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Most `logprobs` in the legacy completions format (OpenAI's limit).
pub const MAX_LEGACY_LOGPROBS: u32 = 5;

impl SamplingFields {
    /// The engine's sampling settings; unset fields take llama.cpp's server defaults, an unset
    /// seed a fresh random one. `vocab` bounds the ids in `logit_bias`; `end_of_generation` are
    /// the tokens `ignore_eos` bans.
    pub fn params(
        &self,
        vocab: usize,
        end_of_generation: &[u32],
        random_seed: u64,
    ) -> Result<SamplingParams, ApiError> {
        let defaults = SamplingParams::default();
        let in_range = |name: &str, v: Option<f32>, lo: f32, hi: f32| match v {
            Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::invalid_param(
                name,
                format!("`{name}` must be between {lo} and {hi}, got {x}"),
            )),
            _ => Ok(()),
        };
        in_range("temperature", self.temperature, 0.0, 2.0)?;
        in_range("top_p", self.top_p, 0.0, 1.0)?;
        in_range("min_p", self.min_p, 0.0, 1.0)?;
        in_range("repeat_penalty", self.repeat_penalty, 0.0, 10.0)?;
        in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        in_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        let mut logit_bias = Vec::new();
        for (key, &bias) in self.logit_bias.iter().flatten() {
            let id = key
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocab)
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "logit_bias",
                        format!("`logit_bias` key {key:?} is not a token id below {vocab}"),
                    )
                })?;
            if !(-100.0..=100.0).contains(&bias) {
                return Err(ApiError::invalid_param(
                    "logit_bias",
                    format!("`logit_bias` values must be between -100 and 100, got {bias}"),
                ));
            }
            // OpenAI: -100 bans a token, 100 forces it.
            let bias = match bias {
                b if b <= -100.0 => f32::NEG_INFINITY,
                b => b,
            };
            logit_bias.push((id, bias));
        }
        if self.ignore_eos.unwrap_or(false) {
            logit_bias.extend(end_of_generation.iter().map(|&id| (id, f32::NEG_INFINITY)));
        }
        Ok(SamplingParams {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k.map_or(defaults.top_k, |k| k as usize),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            typical_p: defaults.typical_p,
            repeat_penalty: self.repeat_penalty.unwrap_or(defaults.repeat_penalty),
            repeat_last_n: defaults.repeat_last_n,
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            logit_bias,
            seed: self.seed.map_or(random_seed, |s| s as u64),
        })
    }

    /// The request's stop strings (empty ones dropped).
    pub fn stop_strings(&self) -> Result<Vec<String>, ApiError> {
        let list = match &self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s.clone()],
            Some(StopField::Many(v)) => v.clone(),
        };
        if list.len() > MAX_STOP_STRINGS {
            return Err(ApiError::invalid_param(
                "stop",
                format!(
                    "at most {MAX_STOP_STRINGS} stop strings, got {}",
                    list.len()
                ),
            ));
        }
        Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
    }
}

/// Refuses `n` other than 1.
pub fn check_n(n: Option<u32>) -> Result<(), ApiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::invalid_param(
            "n",
            format!("`n` must be 1 (this server returns one choice per request), got {n}"),
        )),
    }
}

/// Refuses a `max_tokens` of 0.
pub fn check_max_tokens(name: &str, value: Option<u32>) -> Result<Option<usize>, ApiError> {
    match value {
        Some(0) => Err(ApiError::invalid_param(
            name,
            format!("`{name}` must be at least 1"),
        )),
        other => Ok(other.map(|v| v as usize)),
    }
}

/// One message of a chat request.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// An assistant turn's tool calls (OpenAI's shape, `arguments` a JSON string).
    #[serde(default)]
    pub tool_calls: Option<serde_json::Value>,
    /// A `tool` turn: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A message's content: text, or a list of parts (only text parts are supported).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatMessage {
    /// The message's text (text parts joined).
    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(MessageContent::Text(s)) => Ok(s.clone()),
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::invalid_param(
                                "messages",
                                format!(
                                    "content parts of type {kind:?} are not supported (text only)"
                                ),
                            ))
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(skip)]
    pub sampling: SamplingFields,
    #[serde(skip)]
    pub structured: StructuredFields,
    #[serde(skip)]
    pub tools: ToolFields,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub n: Option<u32>,
    /// llama.cpp's `cache_prompt`: `false` evaluates the whole prompt instead of starting from
    /// a cached prefix.
    #[serde(default)]
    pub cache_prompt: Option<bool>,
}

/// `prompt` of a completions request.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: PromptField,
    #[serde(skip)]
    pub sampling: SamplingFields,
    #[serde(skip)]
    pub structured: StructuredFields,
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    pub logprobs: Option<u32>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub suffix: Option<String>,
    pub n: Option<u32>,
    pub best_of: Option<u32>,
    /// llama.cpp's `cache_prompt` (see [`ChatCompletionRequest::cache_prompt`]).
    #[serde(default)]
    pub cache_prompt: Option<bool>,
}

/// A completions prompt: text to tokenize, or token ids as given.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

impl PromptField {
    /// The single prompt this request carries.
    pub fn single(&self) -> Result<Prompt, ApiError> {
        let several = || {
            ApiError::invalid_param(
                "prompt",
                "only one prompt per request is supported: send one request per prompt",
            )
        };
        match self {
            PromptField::Text(s) => Ok(Prompt::Text(s.clone())),
            PromptField::Texts(v) if v.len() == 1 => Ok(Prompt::Text(v[0].clone())),
            PromptField::Tokens(t) => Ok(Prompt::Tokens(t.clone())),
            PromptField::TokenLists(v) if v.len() == 1 => Ok(Prompt::Tokens(v[0].clone())),
            PromptField::Texts(v) if v.is_empty() => Err(ApiError::invalid_param(
                "prompt",
                "`prompt` is an empty list",
            )),
            _ => Err(several()),
        }
    }
}

/// `usage` of a response.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`: how many prompt tokens came from the prompt cache.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, cached_tokens: usize, completion_tokens: usize) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
        }
    }
}

/// One alternative in the chat logprobs format.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// One generated token in the chat logprobs format.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChatTokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// `logprobs` of a chat choice.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ChatLogprobs {
    pub content: Vec<ChatTokenLogprob>,
}

/// `logprobs` of a legacy completions choice.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LegacyLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    pub text_offset: Vec<usize>,
}

/// The OpenAI `finish_reason` for an engine finish.
pub fn finish_reason(finish: bitnet_engine::FinishReason) -> &'static str {
    use bitnet_engine::FinishReason::*;
    match finish {
        EndOfGeneration | StopString => "stop",
        Length | ContextFull => "length",
    }
}

/// `model` entry of `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let e = ChatCompletionRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = ChatCompletionRequest::parse(b"{\"messages\": [").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn unknown_fields_are_ignored_and_n_is_checked() {
        let r = ChatCompletionRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"user":"x","n":2,"stop":"END"}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].text().unwrap(), "a");
        assert_eq!(r.sampling.stop_strings().unwrap(), vec!["END".to_string()]);
        assert_eq!(check_n(r.n).unwrap_err().param.as_deref(), Some("n"));
    }

    #[test]
    fn prompts_other_than_one_are_refused() {
        let r = CompletionRequest::parse(br#"{"prompt":["a","b"]}"#).unwrap();
        assert!(r.prompt.single().is_err());
        let r = CompletionRequest::parse(br#"{"prompt":[1,2,3]}"#).unwrap();
        assert_eq!(r.prompt.single().unwrap(), Prompt::Tokens(vec![1, 2, 3]));
    }

    #[test]
    fn logit_bias_minus_100_bans_and_bad_ids_are_refused() {
        let f: SamplingFields =
            serde_json::from_str(r#"{"logit_bias":{"5":-100,"6":2.5}}"#).unwrap();
        let p = f.params(10, &[], 1).unwrap();
        assert_eq!(p.logit_bias, vec![(5, f32::NEG_INFINITY), (6, 2.5)]);
        let f: SamplingFields = serde_json::from_str(r#"{"logit_bias":{"50":1}}"#).unwrap();
        assert!(f.params(10, &[], 1).is_err());
    }
}
