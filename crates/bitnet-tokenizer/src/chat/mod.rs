//! Chat templates: turning a conversation into the prompt text a model was trained on.
//!
//! A [`ChatTemplate`] is Jinja source rendered with Hugging Face's conventions (see `jinja`): the
//! model file's own `tokenizer.chat_template` when it has one, else a built-in format chosen from
//! the architecture and vocabulary ([`ChatTemplate::for_model`]), or one named explicitly
//! ([`ChatTemplate::builtin`]). Each carries the texts and token ids that end an assistant turn.

mod builtin;
mod jinja;

pub use builtin::{find_builtin, BuiltinTemplate, BUILTIN_TEMPLATES};

use crate::{EncodeOptions, Result, Tokenizer, TokenizerError};
use serde::{Deserialize, Serialize};

/// One turn of a conversation, with the fields Hugging Face templates read for tool use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` (or `tool`).
    pub role: String,
    /// The text.
    pub content: String,
    /// An assistant turn's tool calls, as HF passes them:
    /// `[{"type": "function", "function": {"name": ..., "arguments": {...}}}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A `tool` turn: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A `tool` turn: the function's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Name under which a model file's own template is compiled.
const FILE_TEMPLATE: &str = "tokenizer.chat_template";

/// A compiled chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    name: String,
    env: minijinja::Environment<'static>,
    source: String,
    stop: Vec<String>,
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct Context<'a> {
    messages: &'a [Message],
    add_generation_prompt: bool,
    bos_token: &'a str,
    eos_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a serde_json::Value>,
}

impl ChatTemplate {
    /// Compiles Jinja source under `name`; `stop` are the texts that end an assistant turn.
    pub fn from_jinja(
        name: impl Into<String>,
        source: impl Into<String>,
        stop: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        let source = source.into();
        let mut env = jinja::environment();
        env.add_template_owned(name.clone(), source.clone())
            .map_err(|e| template_error(&name, &e))?;
        Ok(ChatTemplate {
            name,
            env,
            source,
            stop,
            bos_token: String::new(),
            eos_token: String::new(),
        })
    }

    /// A built-in format by name or alias (see [`BUILTIN_TEMPLATES`]).
    pub fn builtin(name: &str) -> Result<Self> {
        let t = find_builtin(name).ok_or_else(|| TokenizerError::UnknownTemplate(name.into()))?;
        Self::from_jinja(
            t.name,
            t.source,
            t.stop.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// The template for a model: its file's `tokenizer.chat_template` if present, else the
    /// built-in format its architecture and vocabulary point to. BOS/EOS texts come from the
    /// tokenizer.
    pub fn for_model(tokenizer: &Tokenizer) -> Result<Self> {
        let template = match tokenizer.chat_template() {
            Some(source) => Self::from_jinja(FILE_TEMPLATE, source, Vec::new())?,
            None => Self::builtin(detect_builtin(tokenizer))?,
        };
        Ok(template.with_special_tokens_of(tokenizer))
    }

    /// The template a user asked for: `choice` names a Jinja file (read and compiled) or a
    /// built-in format; `None` is the model's own template, else the built-in one detected for
    /// its vocabulary ([`ChatTemplate::for_model`]). BOS/EOS texts come from the tokenizer.
    pub fn resolve(choice: Option<&str>, tokenizer: &Tokenizer) -> Result<Self> {
        let Some(choice) = choice else {
            return Self::for_model(tokenizer);
        };
        let template = if std::path::Path::new(choice).is_file() {
            let source = std::fs::read_to_string(choice).map_err(|source| TokenizerError::Io {
                path: choice.to_string(),
                source,
            })?;
            Self::from_jinja(choice, source, Vec::new())?
        } else {
            Self::builtin(choice)?
        };
        Ok(template.with_special_tokens_of(tokenizer))
    }

    /// Sets `bos_token` / `eos_token` to the tokenizer's BOS and EOS texts.
    pub fn with_special_tokens_of(mut self, tokenizer: &Tokenizer) -> Self {
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
                .to_string()
        };
        self.bos_token = text(tokenizer.bos());
        self.eos_token = text(tokenizer.eos());
        self
    }

    /// Sets `bos_token` / `eos_token` explicitly.
    pub fn with_special_tokens(mut self, bos: &str, eos: &str) -> Self {
        self.bos_token = bos.to_string();
        self.eos_token = eos.to_string();
        self
    }

    /// The template's name (a built-in name, or `tokenizer.chat_template` for a file's own).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Texts that end an assistant turn (beyond the tokenizer's end-of-generation tokens).
    pub fn stop_strings(&self) -> &[String] {
        &self.stop
    }

    /// Token ids that end an assistant turn: the tokenizer's end-of-generation tokens plus every
    /// stop text that is a single token.
    pub fn stop_token_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids: Vec<u32> = tokenizer.end_of_generation().to_vec();
        ids.extend(self.stop.iter().filter_map(|s| tokenizer.token_id(s)));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Renders a conversation to prompt text.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, add_generation_prompt, None)
    }

    /// Renders a conversation with an optional `tools` list (JSON, as HF passes it).
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| template_error(&self.name, &e))?;
        template
            .render(Context {
                messages,
                add_generation_prompt,
                bos_token: &self.bos_token,
                eos_token: &self.eos_token,
                tools,
            })
            .map_err(|e| template_error(&self.name, &e))
    }

    /// Renders and tokenizes: special tokens in the text are parsed, and BOS is added only if
    /// the vocabulary asks for it and the rendered text does not already start with it.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        self.encode_with_tools(tokenizer, messages, add_generation_prompt, None)
    }

    /// [`ChatTemplate::encode`] with a `tools` list passed to the template.
    pub fn encode_with_tools(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>> {
        let text = self.render_with_tools(messages, add_generation_prompt, tools)?;
        let has_bos = !self.bos_token.is_empty() && text.starts_with(&self.bos_token);
        tokenizer.encode_with(
            &text,
            EncodeOptions {
                add_special: !has_bos,
                parse_special: true,
            },
        )
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> TokenizerError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    TokenizerError::Template {
        name: name.to_string(),
        message,
    }
}

/// Picks a built-in format from the architecture, the model name and the vocabulary, for files
/// without a template of their own.
pub fn detect_builtin(tokenizer: &Tokenizer) -> &'static str {
    let arch = tokenizer.architecture().unwrap_or("").to_ascii_lowercase();
    let name = tokenizer.model_name().unwrap_or("").to_ascii_lowercase();
    let has = |text: &str| tokenizer.token_id(text).is_some();
    if arch.starts_with("bitnet") && has("<|eot_id|>") {
        return "bitnet";
    }
    if arch.starts_with("gemma") || has("<start_of_turn>") {
        return "gemma";
    }
    if has("<|start_header_id|>") {
        return "llama3";
    }
    if has("<|im_sep|>") {
        return "phi4";
    }
    if arch == "phi3" || (has("<|assistant|>") && has("<|end|>") && has("<|user|>")) {
        return if has("<|im_start|>") { "phi4" } else { "phi3" };
    }
    if arch.starts_with("command-r") || arch.starts_with("cohere") || has("<|START_OF_TURN_TOKEN|>")
    {
        return "command-r";
    }
    if has("<｜User｜>") {
        return "deepseek3";
    }
    if arch == "deepseek2" {
        return "deepseek2";
    }
    if has("<|EOT|>") {
        return "deepseek";
    }
    if arch.starts_with("internlm") {
        return "internlm2";
    }
    if arch == "chatglm" || has("[gMASK]") {
        return if has("<sop>") { "glm4" } else { "chatglm3" };
    }
    if arch.starts_with("baichuan") || has("<reserved_106>") {
        return "baichuan2";
    }
    if name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "yi")
        && has("<|im_start|>")
    {
        return "yi";
    }
    if has("<|im_start|>") {
        return "chatml";
    }
    if arch.starts_with("starcoder") {
        return "starcoder";
    }
    if arch.starts_with("falcon") {
        return "falcon";
    }
    if arch == "mpt" {
        return "mpt";
    }
    if has("[INST]") || name.contains("mistral") || name.contains("mixtral") {
        return "mistral";
    }
    if name.contains("llama-2") || name.contains("llama2") || name.contains("codellama") {
        return "llama2";
    }
    "instruct"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Constructs common in Hugging Face templates (namespace, `is defined`, `tojson`, Python
    /// string methods, slicing, `in`, `loop`, whitespace control with trim/lstrip_blocks).
    /// Expected strings were rendered by Python jinja2 3.1.6 in transformers' configuration.
    const SOURCE: &str = "{%- set ns = namespace(found=false, n=0) -%}\n{%- for m in messages -%}\n{%- if m.role == 'system' %}{% set ns.found = true %}{% endif -%}\n{%- set ns.n = ns.n + 1 -%}\n{%- endfor -%}\n{%- if tools is defined and tools %}\n# Tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}\n{%- endif %}\n{% for message in messages %}\n    {% if message['role'] == 'user' and message.content.strip().startswith('Hi') %}\n<|greet|>{{ message.content.strip() | upper }}[{{ loop.index0 }}/{{ messages | length }}]\n    {% elif message.role in ['assistant', 'tool'] %}\n<|a|>{{ message.content.split(' ')[0] }}{{ message.content[1:3] }}\n    {% else %}\n<|{{ message.role }}|>{{ message.content.replace('x', 'y') | trim }}\n    {% endif %}\n{% endfor %}\n{{- ('found' if ns.found else 'none') ~ ' n=' ~ ns.n }}\n{%- if add_generation_prompt %}{{ '\\n<|assistant|>' }}{% endif %}\n";

    #[test]
    fn renders_like_python_jinja2() {
        let template = ChatTemplate::from_jinja("hf-style", SOURCE, vec![]).unwrap();
        let messages = [
            Message::system(" sys x "),
            Message::user("  Hi there "),
            Message::assistant("Hello world"),
            Message::user("max"),
        ];
        let tools: serde_json::Value = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "get", "parameters": {"x": 1}}}]"#,
        )
        .unwrap();
        assert_eq!(
            template.render_with_tools(&messages, true, Some(&tools)).unwrap(),
            "# Tools\n{\"type\": \"function\", \"function\": {\"name\": \"get\", \"parameters\": {\"x\": 1}}}\n<|system|>sys y\n<|greet|>HI THERE[1/4]\n<|a|>Helloel\n<|user|>may\nfound n=4\n<|assistant|>"
        );
        assert_eq!(
            template.render(&messages, false).unwrap(),
            "<|system|>sys y\n<|greet|>HI THERE[1/4]\n<|a|>Helloel\n<|user|>may\nfound n=4"
        );
    }

    /// Tool turns reach the template in HF's shape: an assistant turn's `tool_calls` (defined only
    /// when present, arguments as objects), a `tool` turn's `name` and `tool_call_id`. Expected
    /// string rendered by Python jinja2 3.1.6 (trim/lstrip blocks, `tojson` = json.dumps).
    #[test]
    fn tool_turns_render_like_python_jinja2() {
        let source = "{%- for m in messages %}<|{{ m.role }}|>{% if m.tool_calls is defined %}{% for c in m.tool_calls %}<tool_call>{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% elif m.role == 'tool' %}<tool_response name={{ m.name }} id={{ m.tool_call_id }}>{{ m.content }}</tool_response>{% else %}{{ m.content }}{% endif %}\n{% endfor %}{% if tools %}tools={{ tools | length }}{% endif %}";
        let template = ChatTemplate::from_jinja("tools", source, vec![]).unwrap();
        let mut assistant = Message::assistant("");
        assistant.tool_calls = Some(
            serde_json::json!([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]),
        );
        let mut tool = Message::new("tool", "21 C");
        tool.tool_call_id = Some("call_1".into());
        tool.name = Some("get_weather".into());
        let messages = [Message::user("Weather in Paris?"), assistant, tool];
        let tools = serde_json::json!([{"type": "function"}]);
        assert_eq!(
            template.render_with_tools(&messages, false, Some(&tools)).unwrap(),
            "<|user|>Weather in Paris?<|assistant|><tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}</tool_call><|tool|><tool_response name=get_weather id=call_1>21 C</tool_response>tools=1"
        );
    }
}
