//! The built-in chat formats, used when a model file carries no `tokenizer.chat_template`. Each is
//! a short Jinja template (rendered by the same engine as file templates, so there is one renderer)
//! plus the texts that end an assistant turn. Written from the formats' published descriptions.

/// A built-in chat format.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinTemplate {
    /// Name used on the command line (`--chat-template NAME`).
    pub name: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// One line for `bitnet templates`.
    pub description: &'static str,
    /// Jinja source (HF conventions: `messages`, `add_generation_prompt`, `bos_token`, ...).
    pub source: &'static str,
    /// Texts that end the assistant's turn (special tokens or plain text).
    pub stop: &'static [&'static str],
}

/// Splits a leading system message off into `sys` (and the rest into `msgs`), for formats
/// that have no system role.
macro_rules! with_merged_system {
    ($body:literal) => {
        concat!(
            "{%- if messages and messages[0].role == 'system' -%}{%- set sys = messages[0].content -%}{%- set msgs = messages[1:] -%}{%- else -%}{%- set sys = '' -%}{%- set msgs = messages -%}{%- endif -%}",
            $body
        )
    };
}

/// Every built-in format, in the order `bitnet templates` lists them.
pub const BUILTIN_TEMPLATES: &[BuiltinTemplate] = &[
    BuiltinTemplate {
        name: "bitnet",
        aliases: &["bitnet-b1.58", "bitnet-2b-4t"],
        description: "BitNet b1.58 2B-4T: `Role: text<|eot_id|>` turns after <|begin_of_text|>",
        source: "{{ bos_token }}{% for m in messages %}{{ m.role | capitalize }}: {{ m.content | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}",
        stop: &["<|eot_id|>", "<|end_of_text|>"],
    },
    BuiltinTemplate {
        name: "llama3",
        aliases: &["llama-3", "llama3.1", "llama3.2"],
        description: "LLaMA-3 instruct: <|start_header_id|>role<|end_header_id|> blocks ending in <|eot_id|>",
        source: "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        stop: &["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"],
    },
    BuiltinTemplate {
        name: "chatml",
        aliases: &["qwen", "qwen2", "qwen2.5", "smollm"],
        description: "ChatML (Qwen, SmolLM, many fine-tunes): <|im_start|>role\\ntext<|im_end|>",
        source: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        stop: &["<|im_end|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "phi4",
        aliases: &["phi-4"],
        description: "Phi-4: <|im_start|>role<|im_sep|>text<|im_end|>",
        source: "{% for m in messages %}<|im_start|>{{ m.role }}<|im_sep|>{{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant<|im_sep|>{% endif %}",
        stop: &["<|im_end|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "phi3",
        aliases: &["phi-3"],
        description: "Phi-3: <|role|>\\ntext<|end|>\\n",
        source: "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        stop: &["<|end|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "gemma",
        aliases: &["gemma2", "gemma3"],
        description: "Gemma: <start_of_turn>user|model\\ntext<end_of_turn>, system text joined to the first user turn",
        source: with_merged_system!("{{ bos_token }}{% for m in msgs %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{% if loop.first and sys %}{{ sys | trim }}\n\n{% endif %}{{ m.content | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
        stop: &["<end_of_turn>", "<eos>"],
    },
    BuiltinTemplate {
        name: "mistral",
        aliases: &["mistral-v1", "mixtral"],
        description: "Mistral instruct: [INST] user [/INST] answer</s>, system text joined to the first user turn",
        source: with_merged_system!("{{ bos_token }}{% for m in msgs %}{% if m.role == 'user' %}[INST] {% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m.content }} [/INST]{% else %} {{ m.content }}</s>{% endif %}{% endfor %}"),
        stop: &["</s>"],
    },
    BuiltinTemplate {
        name: "llama2",
        aliases: &["codellama", "llama-2"],
        description: "LLaMA-2 / CodeLlama instruct: [INST] <<SYS>>system<</SYS>> user [/INST] answer </s>",
        source: with_merged_system!("{% for m in msgs %}{% if m.role == 'user' %}{{ bos_token }}[INST] {% if loop.first and sys %}<<SYS>>\n{{ sys }}\n<</SYS>>\n\n{% endif %}{{ m.content | trim }} [/INST]{% else %} {{ m.content | trim }} </s>{% endif %}{% endfor %}"),
        stop: &["</s>"],
    },
    BuiltinTemplate {
        name: "deepseek",
        aliases: &["deepseek-coder"],
        description: "DeepSeek-Coder instruct: ### Instruction: / ### Response: blocks ending in <|EOT|>",
        source: "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n{% else %}### Response:\n{{ m.content }}\n<|EOT|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}",
        stop: &["<|EOT|>"],
    },
    BuiltinTemplate {
        name: "deepseek2",
        aliases: &["deepseek-v2"],
        description: "DeepSeek-V2 chat: User: text\\n\\nAssistant: text<｜end▁of▁sentence｜>",
        source: "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n{% elif m.role == 'user' %}User: {{ m.content }}\n\n{% else %}Assistant: {{ m.content }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}",
        stop: &["<｜end▁of▁sentence｜>"],
    },
    BuiltinTemplate {
        name: "deepseek3",
        aliases: &["deepseek-v3", "deepseek-r1"],
        description: "DeepSeek-V3 / R1: <｜User｜>text<｜Assistant｜>text<｜end▁of▁sentence｜>",
        source: "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}{% elif m.role == 'user' %}<｜User｜>{{ m.content }}{% else %}<｜Assistant｜>{{ m.content }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜>{% endif %}",
        stop: &["<｜end▁of▁sentence｜>"],
    },
    BuiltinTemplate {
        name: "starcoder",
        aliases: &["starchat"],
        description: "StarChat / StarCoder chat: <|system|>\\n...<|end|>\\n<|user|>\\n...<|end|>\\n<|assistant|>\\n",
        source: "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        stop: &["<|end|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "falcon",
        aliases: &["falcon3"],
        description: "Falcon 3: <|system|>\\ntext\\n<|user|>\\ntext\\n<|assistant|>\\n",
        source: "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        stop: &["<|endoftext|>", "\n<|user|>"],
    },
    BuiltinTemplate {
        name: "command-r",
        aliases: &["cohere", "command-r-plus"],
        description: "Cohere Command-R: <|START_OF_TURN_TOKEN|><|USER_TOKEN|>text<|END_OF_TURN_TOKEN|>",
        source: "{{ bos_token }}{% for m in messages %}<|START_OF_TURN_TOKEN|>{% if m.role == 'system' %}<|SYSTEM_TOKEN|>{% elif m.role == 'user' %}<|USER_TOKEN|>{% else %}<|CHATBOT_TOKEN|>{% endif %}{{ m.content | trim }}<|END_OF_TURN_TOKEN|>{% endfor %}{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{% endif %}",
        stop: &["<|END_OF_TURN_TOKEN|>"],
    },
    BuiltinTemplate {
        name: "internlm2",
        aliases: &["internlm"],
        description: "InternLM2: <s> then ChatML turns",
        source: "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        stop: &["<|im_end|>"],
    },
    BuiltinTemplate {
        name: "yi",
        aliases: &["yi-chat"],
        description: "Yi chat: ChatML turns, stops at <|im_end|>",
        source: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        stop: &["<|im_end|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "baichuan2",
        aliases: &["baichuan"],
        description: "Baichuan 2 chat: system text, then <reserved_106>user<reserved_107>assistant",
        source: "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}{% elif m.role == 'user' %}<reserved_106>{{ m.content }}{% else %}<reserved_107>{{ m.content }}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}<reserved_107>{% endif %}",
        stop: &["</s>", "<reserved_106>"],
    },
    BuiltinTemplate {
        name: "chatglm3",
        aliases: &["chatglm"],
        description: "ChatGLM3: [gMASK]sop<|role|>\\n text",
        source: "[gMASK]sop{% for m in messages %}<|{{ m.role }}|>\n {{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
        stop: &["<|user|>", "<|observation|>"],
    },
    BuiltinTemplate {
        name: "glm4",
        aliases: &["chatglm4", "glm-4"],
        description: "GLM-4: [gMASK]<sop><|role|>\\ntext",
        source: "[gMASK]<sop>{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        stop: &["<|user|>", "<|observation|>", "<|endoftext|>"],
    },
    BuiltinTemplate {
        name: "mpt",
        aliases: &["mpt-instruct", "dolly"],
        description: "MPT-instruct / Dolly: fixed preamble, ### Instruction: / ### Response:",
        source: "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n{% else %}### Response:\n{{ m.content }}\n\n{% endif %}{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}",
        stop: &["<|endoftext|>", "### Instruction:"],
    },
    BuiltinTemplate {
        name: "instruct",
        aliases: &["plain", "alpaca"],
        description: "Plain instruct (Alpaca style): system text, ### Instruction: / ### Response:",
        source: "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n{% else %}### Response:\n{{ m.content }}\n\n{% endif %}{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}",
        stop: &["### Instruction:"],
    },
    BuiltinTemplate {
        name: "raw",
        aliases: &["none"],
        description: "No markup: the messages' text joined by newlines (for base models)",
        source: "{% for m in messages %}{{ m.content }}{% if not loop.last %}\n{% endif %}{% endfor %}",
        stop: &[],
    },
];

/// Finds a built-in format by name or alias (case-insensitive).
pub fn find_builtin(name: &str) -> Option<&'static BuiltinTemplate> {
    let name = name.to_ascii_lowercase();
    BUILTIN_TEMPLATES
        .iter()
        .find(|t| t.name == name || t.aliases.contains(&name.as_str()))
}
