//! `bitnet tokenize` (text to ids and pieces, llama-tokenize style) and `bitnet templates` (the
//! built-in chat formats, and which one a model would use).

use anyhow::Context;
use bitnet_tokenizer::chat::{detect_builtin, ChatTemplate, Message, BUILTIN_TEMPLATES};
use bitnet_tokenizer::{EncodeOptions, Tokenizer};
use std::path::{Path, PathBuf};

/// Arguments of `bitnet tokenize`.
#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// Model: a GGUF file (vocab-only files work) or a Hugging Face tokenizer.json.
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from this file instead (bytes as stored, no newline added or removed).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Print only the ids, space-separated on one line.
    #[arg(long)]
    pub ids_only: bool,
    /// Do not add BOS/EOS even where the model asks for them.
    #[arg(long)]
    pub no_bos: bool,
    /// Treat special-token text such as `<|eot_id|>` as ordinary text.
    #[arg(long)]
    pub no_parse_special: bool,
}

/// Loads a tokenizer from a GGUF file or, for `*.json`, a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    let tokenizer = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        Tokenizer::from_tokenizer_json(path)
    } else {
        Tokenizer::from_gguf_path(path)
    };
    tokenizer.with_context(|| format!("loading the tokenizer of {}", path.display()))
}

/// Runs `bitnet tokenize`.
pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let tokenizer = load_tokenizer(&args.model)?;
    let text = match (&args.text, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, None) => anyhow::bail!("give the text to tokenize, or --file"),
    };
    let ids = tokenizer.encode_with(
        &text,
        EncodeOptions {
            add_special: !args.no_bos,
            parse_special: !args.no_parse_special,
        },
    )?;
    if args.ids_only {
        let line: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", line.join(" "));
        return Ok(());
    }
    for &id in &ids {
        let piece = tokenizer.token_bytes(id, true)?;
        println!("{id:>6} -> '{}'", String::from_utf8_lossy(&piece));
    }
    Ok(())
}

/// Arguments of `bitnet templates`.
#[derive(Debug, clap::Args)]
pub struct TemplatesArgs {
    /// Also say which template this model uses (its own, or the built-in one detected) and
    /// render a short sample conversation with it.
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
}

/// Runs `bitnet templates`.
pub fn run_templates(args: TemplatesArgs) -> anyhow::Result<()> {
    for t in BUILTIN_TEMPLATES {
        let aliases = if t.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also: {})", t.aliases.join(", "))
        };
        println!("{:<11} {}{aliases}", t.name, t.description);
        if !t.stop.is_empty() {
            println!("{:<11} stops at: {}", "", t.stop.join("  ").escape_debug());
        }
    }
    if let Some(model) = &args.model {
        let tokenizer = load_tokenizer(model)?;
        let template = ChatTemplate::for_model(&tokenizer)?;
        println!();
        match tokenizer.chat_template() {
            Some(_) => println!("{}: uses its own tokenizer.chat_template", model.display()),
            None => println!(
                "{}: no template in the file; built-in `{}` detected",
                model.display(),
                detect_builtin(&tokenizer)
            ),
        }
        let sample = [
            Message::system("You are a helpful assistant."),
            Message::user("Hello!"),
        ];
        println!("sample:\n{}", template.render(&sample, true)?);
        let stops: Vec<String> = template
            .stop_token_ids(&tokenizer)
            .iter()
            .map(|&id| format!("{id} {:?}", tokenizer.token_text(id).unwrap_or("")))
            .collect();
        println!("stop tokens: {}", stops.join(", "));
    }
    Ok(())
}
