//! Tool calling on `/v1/chat/completions`: OpenAI's `tools`, `tool_choice` (`none`, `auto`,
//! `required`, or a named function) and `parallel_tool_calls`.
//!
//! The tools reach the model through its chat template (`tools` passed to Jinja as Hugging Face
//! does); assistant turns that carried `tool_calls` and `tool` turns of earlier requests are
//! passed back in HF's shape. The model's answer is parsed back in the format its template
//! teaches ([`ToolFormat`]): Hermes/Qwen `<tool_call>{...}</tool_call>` blocks, Mistral
//! `[TOOL_CALLS][...]`, LLaMA-3 JSON `{"name", "parameters"}`, or, for templates that define none
//! (they never mention `tools`), a generic JSON form `{"tool_calls": [{"name", "arguments"}]}`
//! taught by a system message this module adds. Tool calls are recognised at the start of the
//! answer. With `tool_choice` `required` or named, a grammar over the whole call format, the
//! arguments constrained by each function's JSON schema, makes the answer a valid call.

use bitnet_engine::ConstraintSpec;
use bitnet_tokenizer::chat::{ChatTemplate, Message};
use bitnet_tokenizer::{TokenType, Tokenizer};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// The tool fields of a chat request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ToolFields {
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
}

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    /// Its arguments' JSON schema (`{"type": "object"}` when the request gives none).
    pub parameters: Value,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    Required,
    Named(String),
}

/// The tools of a request that may call them.
#[derive(Debug, Clone)]
pub struct ToolRequest {
    pub tools: Vec<Tool>,
    /// The `tools` list as given (what the template sees).
    pub raw: Value,
    pub choice: ToolChoice,
    pub parallel: bool,
}

impl ToolFields {
    /// The request's tools, or `None` when it has none or `tool_choice` is `none`.
    pub fn parse(&self) -> Result<Option<ToolRequest>, ApiError> {
        let bad = |param: &str, message: String| ApiError::invalid_param(param, message);
        let list = self.tools.clone().unwrap_or_default();
        let mut tools = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            if entry.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad(
                    "tools",
                    format!("`tools[{i}].type` must be \"function\""),
                ));
            }
            let function = entry
                .get("function")
                .ok_or_else(|| bad("tools", format!("`tools[{i}]` needs a `function` object")))?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("tools", format!("`tools[{i}].function.name` is missing")))?;
            let parameters = match function.get("parameters") {
                None | Some(Value::Null) => json!({"type": "object"}),
                Some(p) if p.is_object() => p.clone(),
                Some(_) => {
                    return Err(bad(
                        "tools",
                        format!("`tools[{i}].function.parameters` must be a JSON Schema object"),
                    ))
                }
            };
            if tools.iter().any(|t: &Tool| t.name == name) {
                return Err(bad("tools", format!("two tools are named {name:?}")));
            }
            tools.push(Tool {
                name: name.to_string(),
                parameters,
            });
        }
        let choice = match &self.tool_choice {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "none" => return Ok(None),
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => {
                    return Err(bad(
                        "tool_choice",
                        format!(
                            "`tool_choice` {other:?} is not none, auto, required or a function"
                        ),
                    ))
                }
            },
            Some(object) => {
                let name = object
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .filter(|_| object.get("type").and_then(Value::as_str) == Some("function"))
                    .ok_or_else(|| {
                        bad(
                            "tool_choice",
                            "`tool_choice` must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}".into(),
                        )
                    })?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(bad(
                        "tool_choice",
                        format!("`tool_choice` names {name:?}, which is not in `tools`"),
                    ));
                }
                ToolChoice::Named(name.to_string())
            }
        };
        if tools.is_empty() {
            return match choice {
                ToolChoice::Auto => Ok(None),
                _ => Err(bad(
                    "tool_choice",
                    "`tool_choice` asks for a tool call but `tools` is empty".into(),
                )),
            };
        }
        Ok(Some(ToolRequest {
            tools,
            raw: Value::Array(list),
            choice,
            parallel: self.parallel_tool_calls.unwrap_or(true),
        }))
    }
}

impl ToolRequest {
    /// Whether the answer must be a tool call.
    pub fn forced(&self) -> bool {
        self.choice != ToolChoice::Auto
    }

    /// The tools the answer may call.
    fn callable(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter().filter(move |t| match &self.choice {
            ToolChoice::Named(name) => &t.name == name,
            _ => true,
        })
    }

    /// The JSON schema of one call `{"name": N, KEY: arguments}` for any callable tool.
    fn call_schema(&self, arguments_key: &str) -> Value {
        let alternatives: Vec<Value> = self
            .callable()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {"name": {"const": t.name}, arguments_key: t.parameters},
                    "required": ["name", arguments_key],
                    "additionalProperties": false,
                })
            })
            .collect();
        if alternatives.len() == 1 {
            alternatives.into_iter().next().unwrap_or(Value::Null)
        } else {
            json!({"anyOf": alternatives})
        }
    }

    /// A list of calls: at least one, one at most without `parallel_tool_calls`.
    fn calls_schema(&self) -> Value {
        let mut schema =
            json!({"type": "array", "items": self.call_schema("arguments"), "minItems": 1});
        if !self.parallel {
            schema["maxItems"] = json!(1);
        }
        schema
    }
}

/// How a template's model writes tool calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` (Qwen 2.5, Hermes); the tags'
    /// token ids when they are control tokens.
    Hermes {
        open: Option<u32>,
        close: Option<u32>,
    },
    /// `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`; the marker's token id when it is a
    /// control token.
    Mistral { marker: Option<u32> },
    /// `{"name": ..., "parameters": {...}}`, optionally after `<|python_tag|>` (LLaMA 3.1+).
    Llama3,
    /// `{"tool_calls": [{"name": ..., "arguments": {...}}]}`; `teach`: the template does not
    /// render `tools`, so a system message describes them and the format.
    Generic { teach: bool },
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const MISTRAL_MARKER: &str = "[TOOL_CALLS]";
const PYTHON_TAG: &str = "<|python_tag|>";

impl ToolFormat {
    /// The format the template's source teaches.
    pub fn detect(template: &ChatTemplate, tokenizer: &Tokenizer) -> ToolFormat {
        let source = template.source();
        let control = |text: &str| {
            tokenizer.token_id(text).filter(|&id| {
                matches!(
                    tokenizer.token_type(id),
                    Some(TokenType::Control | TokenType::Unknown)
                )
            })
        };
        if source.contains(HERMES_OPEN) {
            ToolFormat::Hermes {
                open: control(HERMES_OPEN),
                close: control(HERMES_CLOSE),
            }
        } else if source.contains(MISTRAL_MARKER) {
            ToolFormat::Mistral {
                marker: control(MISTRAL_MARKER),
            }
        } else if source.contains(PYTHON_TAG)
            || (source.contains("tools") && source.contains("<|start_header_id|>"))
        {
            ToolFormat::Llama3
        } else {
            ToolFormat::Generic {
                teach: !source.contains("tools"),
            }
        }
    }

    /// Texts that open a tool call at the start of an answer.
    fn markers(&self) -> &'static [&'static str] {
        match self {
            ToolFormat::Hermes { .. } => &[HERMES_OPEN],
            ToolFormat::Mistral { .. } => &[MISTRAL_MARKER],
            ToolFormat::Llama3 => &["{", PYTHON_TAG],
            ToolFormat::Generic { .. } => &["{"],
        }
    }

    /// The system text that teaches the generic format (`None` for the others).
    pub fn teaching(&self, tools: &ToolRequest) -> Option<String> {
        if *self != (ToolFormat::Generic { teach: true }) {
            return None;
        }
        let list: Vec<String> = tools
            .raw
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("function"))
            .map(|f| f.to_string())
            .collect();
        Some(format!(
            "You can call these tools (JSON descriptions):\n{}\nTo call tools, answer with only a JSON object: {{\"tool_calls\": [{{\"name\": \"<tool name>\", \"arguments\": {{<arguments>}}}}]}}. Otherwise answer normally.",
            list.join("\n")
        ))
    }

    /// The grammar that makes the answer a call to one of the callable tools.
    pub fn grammar(&self, tools: &ToolRequest) -> ConstraintSpec {
        let compact = |mut schema: Value| {
            schema["x-guidance"] = json!({"whitespace_flexible": false});
            schema
        };
        match self {
            ToolFormat::Hermes { open, close } => {
                let call = compact(tools.call_schema("arguments"));
                let repeat = if tools.parallel {
                    " (\"\\n\" call)*"
                } else {
                    ""
                };
                let open = lark_marker(*open, HERMES_OPEN);
                let close = lark_marker(*close, HERMES_CLOSE);
                ConstraintSpec::Lark(format!(
                    "start: call{repeat}\ncall: {open} \"\\n\" %json {call} \"\\n\" {close}\n"
                ))
            }
            ToolFormat::Mistral { marker } => {
                let opener = lark_marker(*marker, MISTRAL_MARKER);
                let calls = compact(tools.calls_schema());
                ConstraintSpec::Lark(format!("start: {opener} %json {calls}\n"))
            }
            ToolFormat::Llama3 => ConstraintSpec::JsonSchema(tools.call_schema("parameters")),
            ToolFormat::Generic { .. } => ConstraintSpec::JsonSchema(json!({
                "type": "object",
                "properties": {"tool_calls": tools.calls_schema()},
                "required": ["tool_calls"],
                "additionalProperties": false,
            })),
        }
    }

    /// Whether `text` (the start of an answer) is, or may still become, a tool call:
    /// `Some(true)` it is one, `Some(false)` it is not, `None` not known yet.
    pub fn opens_call(&self, text: &str) -> Option<bool> {
        let t = text.trim_start();
        if t.is_empty() {
            return None;
        }
        if self.markers().iter().any(|m| t.starts_with(m)) {
            Some(true)
        } else if self.markers().iter().any(|m| m.starts_with(t)) {
            None
        } else {
            Some(false)
        }
    }

    /// The calls in a whole answer; `None` when it is not a (complete) tool call.
    pub fn parse(&self, text: &str, tools: &ToolRequest) -> Option<Vec<ParsedCall>> {
        let t = text.trim();
        let calls: Vec<(String, Value)> = match self {
            ToolFormat::Hermes { .. } => {
                let mut calls = Vec::new();
                let mut rest = t;
                while let Some(start) = rest.find(HERMES_OPEN) {
                    if !rest[..start].trim().is_empty() {
                        return None;
                    }
                    let body = &rest[start + HERMES_OPEN.len()..];
                    let (inner, after) = match body.find(HERMES_CLOSE) {
                        Some(end) => (&body[..end], &body[end + HERMES_CLOSE.len()..]),
                        None => (body, ""),
                    };
                    calls.push(name_and_arguments(&first_json(inner)?, &["arguments"])?);
                    rest = after;
                }
                if !rest.trim().is_empty() {
                    return None;
                }
                calls
            }
            ToolFormat::Mistral { .. } => {
                let list = first_json(t.strip_prefix(MISTRAL_MARKER)?)?;
                match list {
                    Value::Array(items) => items
                        .iter()
                        .map(|c| name_and_arguments(c, &["arguments"]))
                        .collect::<Option<_>>()?,
                    object => vec![name_and_arguments(&object, &["arguments"])?],
                }
            }
            ToolFormat::Llama3 => {
                let body = t.strip_prefix(PYTHON_TAG).unwrap_or(t);
                vec![name_and_arguments(
                    &first_json(body)?,
                    &["parameters", "arguments"],
                )?]
            }
            ToolFormat::Generic { .. } => {
                let object = first_json(t)?;
                match (object.get("tool_calls"), object.get("tool_call")) {
                    (Some(Value::Array(items)), _) => items
                        .iter()
                        .map(|c| name_and_arguments(c, &["arguments"]))
                        .collect::<Option<_>>()?,
                    (None, Some(call)) => vec![name_and_arguments(call, &["arguments"])?],
                    _ => return None,
                }
            }
        };
        if calls.is_empty()
            || calls
                .iter()
                .any(|(n, _)| !tools.tools.iter().any(|t| &t.name == n))
        {
            return None;
        }
        Some(
            calls
                .into_iter()
                .map(|(name, arguments)| ParsedCall {
                    id: format!("call_{:016x}", crate::state::random_u64()),
                    name,
                    arguments: arguments.to_string(),
                })
                .collect(),
        )
    }
}

/// A marker in a Lark grammar: its control token by id, or its text.
fn lark_marker(control: Option<u32>, text: &str) -> String {
    match control {
        Some(id) => format!("<[{id}]>"),
        None => format!("\"{text}\""),
    }
}

/// The first JSON value at the start of `text` (trailing text ignored).
fn first_json(text: &str) -> Option<Value> {
    serde_json::Deserializer::from_str(text.trim())
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// `(name, arguments)` of a call object; the arguments under the first of `keys` present (an
/// object, or a string holding one).
fn name_and_arguments(call: &Value, keys: &[&str]) -> Option<(String, Value)> {
    let name = call.get("name")?.as_str()?.to_string();
    let arguments = keys
        .iter()
        .find_map(|k| call.get(*k))
        .cloned()
        .unwrap_or(json!({}));
    let arguments = match arguments {
        Value::String(s) => serde_json::from_str(&s).ok()?,
        other => other,
    };
    arguments.is_object().then_some((name, arguments))
}

/// A tool call parsed from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON string (OpenAI's shape).
    pub arguments: String,
}

impl ParsedCall {
    /// The call in a message's `tool_calls`.
    pub fn message_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
    }
}

/// A request message's tool fields turned into the template's [`Message`] fields: an assistant
/// turn's `tool_calls` with their arguments parsed into objects (HF templates `tojson` them),
/// and a `tool` turn's `tool_call_id` with the name of the call it answers. In the generic
/// format (templates that ignore `tool_calls`) the calls also become the turn's text.
pub fn history_message(
    mut message: Message,
    tool_calls: Option<&Value>,
    tool_call_id: Option<&str>,
    earlier: &[Message],
    format: Option<&ToolFormat>,
) -> Result<Message, ApiError> {
    if let Some(calls) = tool_calls {
        let list = calls.as_array().ok_or_else(|| {
            ApiError::invalid_param("messages", "`tool_calls` of a message must be a list")
        })?;
        let mut hf = Vec::with_capacity(list.len());
        let mut generic = Vec::with_capacity(list.len());
        for call in list {
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid_param("messages", "a tool call needs `function.name`")
                })?;
            let arguments = match call.pointer("/function/arguments") {
                Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                    ApiError::invalid_param(
                        "messages",
                        format!("tool call {name:?}: `arguments` is not JSON: {e}"),
                    )
                })?,
                Some(v) => v.clone(),
                None => json!({}),
            };
            hf.push(json!({
                "id": call.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }));
            generic.push(json!({"name": name, "arguments": arguments}));
        }
        if matches!(format, Some(ToolFormat::Generic { .. })) && message.content.is_empty() {
            message.content = json!({ "tool_calls": generic }).to_string();
        }
        message.tool_calls = Some(Value::Array(hf));
    }
    if let Some(id) = tool_call_id {
        message.tool_call_id = Some(id.to_string());
        message.name = earlier
            .iter()
            .rev()
            .filter_map(|m| m.tool_calls.as_ref()?.as_array())
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|c| c.pointer("/function/name")?.as_str().map(str::to_string));
    }
    Ok(message)
}

/// Adds the generic format's teaching to the system message (or a new one first).
pub fn add_teaching(messages: &mut Vec<Message>, teaching: String) {
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{teaching}", first.content);
        }
        _ => messages.insert(0, Message::system(teaching)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(choice: Value) -> ToolRequest {
        ToolFields {
            tools: Some(vec![json!({"type": "function", "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            }})]),
            tool_choice: Some(choice),
            parallel_tool_calls: None,
        }
        .parse()
        .unwrap()
        .unwrap()
    }

    const HERMES: ToolFormat = ToolFormat::Hermes {
        open: None,
        close: None,
    };

    #[test]
    fn every_format_parses_its_calls() {
        let tools = request(json!("auto"));
        let cases = [
            (HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"),
            (ToolFormat::Mistral { marker: None }, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"),
            (ToolFormat::Llama3, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"),
            (ToolFormat::Generic { teach: true }, "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}]}"),
        ];
        for (format, text) in cases {
            let calls = format
                .parse(text, &tools)
                .unwrap_or_else(|| panic!("{format:?}"));
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].name, "get_weather");
            assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);
            // The first character is a call's start ("{") or may still become its marker.
            assert_eq!(
                format.opens_call(&text[..1]),
                if text.starts_with('{') {
                    Some(true)
                } else {
                    None
                }
            );
        }
        let two = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}\n</tool_call>";
        assert_eq!(HERMES.parse(two, &tools).unwrap().len(), 2);
        // Not calls: plain text, an unknown function, text before the call.
        assert!(ToolFormat::Generic { teach: true }
            .parse("Paris is sunny.", &tools)
            .is_none());
        assert!(ToolFormat::Llama3
            .parse("{\"name\": \"other\", \"parameters\": {}}", &tools)
            .is_none());
        assert!(HERMES
            .parse(
                "Sure. <tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>",
                &tools
            )
            .is_none());
        assert_eq!(HERMES.opens_call("Sure"), Some(false));
    }

    #[test]
    fn choices_and_bad_tools_are_checked() {
        assert_eq!(request(json!("required")).choice, ToolChoice::Required);
        assert_eq!(
            request(json!({"type": "function", "function": {"name": "get_weather"}})).choice,
            ToolChoice::Named("get_weather".into())
        );
        let fields = |tools: Value, choice: Value| ToolFields {
            tools: serde_json::from_value(tools).unwrap(),
            tool_choice: Some(choice),
            parallel_tool_calls: None,
        };
        assert!(fields(json!([]), json!("none")).parse().unwrap().is_none());
        let e = fields(
            json!([{"type": "function", "function": {"name": "f"}}]),
            json!({"type": "function", "function": {"name": "g"}}),
        )
        .parse()
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = fields(json!([{"type": "retrieval"}]), json!("auto"))
            .parse()
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools"));
    }

    #[test]
    fn history_messages_take_hf_shape() {
        let calls = json!([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]);
        let assistant = history_message(
            Message::assistant(""),
            Some(&calls),
            None,
            &[],
            Some(&ToolFormat::Generic { teach: true }),
        )
        .unwrap();
        assert_eq!(
            assistant.tool_calls.as_ref().unwrap()[0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(
            assistant.content,
            r#"{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}"#
        );
        let tool = history_message(
            Message::new("tool", "sunny"),
            None,
            Some("call_1"),
            &[assistant],
            None,
        )
        .unwrap();
        assert_eq!(tool.name.as_deref(), Some("get_weather"));
        assert_eq!(tool.tool_call_id.as_deref(), Some("call_1"));
    }

    /// Every format's call grammar compiles for a real vocabulary (SmolLM2's), and walking it
    /// token by token (a short allowed token each step) gives an answer its parser reads
    /// back as a call to the forced tool.
    #[test]
    fn every_call_grammar_compiles_and_parses_back() {
        let tokenizer = Tokenizer::from_gguf_path(bitnet_testdata::smollm2()).unwrap();
        let compiler = bitnet_engine::ConstraintCompiler::new(&tokenizer).unwrap();
        let tools = request(json!({"type": "function", "function": {"name": "get_weather"}}));
        for format in [
            HERMES,
            ToolFormat::Mistral { marker: None },
            ToolFormat::Llama3,
            ToolFormat::Generic { teach: true },
        ] {
            let mut constraint = compiler
                .compile(&format.grammar(&tools))
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            let mut bytes = Vec::new();
            while !constraint.is_stopped() {
                let mask = constraint.mask().unwrap();
                let token = (0..tokenizer.vocab_size() as u32)
                    .filter(|&t| mask.allows(t))
                    // Ending first, then closing quotes and brackets (strings stay short), then
                    // the shortest text.
                    .min_by_key(|&t| {
                        let bytes = tokenizer.token_bytes(t, false).unwrap();
                        let closes = bytes.iter().any(|b| b"\"}]".contains(b));
                        match (tokenizer.is_end_of_generation(t), closes, bytes.len()) {
                            (true, _, _) => (0, 0),
                            (false, _, 0) => (3, 0),
                            (false, true, n) => (1, n),
                            (false, false, n) => (2, n),
                        }
                    })
                    .unwrap();
                constraint.consume(token).unwrap();
                if tokenizer.is_end_of_generation(token) {
                    break;
                }
                bytes.extend(tokenizer.token_bytes(token, false).unwrap());
                assert!(
                    bytes.len() < 400,
                    "{format:?}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            let text = String::from_utf8(bytes).unwrap();
            let calls = format
                .parse(&text, &tools)
                .unwrap_or_else(|| panic!("{format:?}: {text:?}"));
            assert_eq!(calls[0].name, "get_weather", "{text}");
        }
    }
}
