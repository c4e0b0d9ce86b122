//! `bitnet chat`: an interactive conversation under the model's chat template, streamed as it is
//! generated. The KV cache is kept between turns (only the new part of the rendered conversation
//! is evaluated). Commands: /help, /clear, /system TEXT, /metrics, /save FILE, /exit. A line
//! ending in `\` continues on the next line. Ctrl-C stops the current answer, not the program.
//! With stdin not a terminal, each line (or `\`-joined group) is one user turn. `--receipt FILE`
//! writes one receipt at exit summing the session's completed answers (an answer stopped by
//! Ctrl-C is not counted). With `--strict`, a model without its own chat template is refused
//! unless `--template` names one. `--json-schema FILE` / `--grammar FILE` constrain every answer.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use bitnet_engine::{generate, EngineError, RunTotals};
use bitnet_tokenizer::chat::Message;
use bitnet_tokenizer::Tokenizer;

/// Arguments of `bitnet chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// GGUF model file (default: the shipped model in `models/`).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Chat template: a built-in name (see `bitnet templates`) or a Jinja file; default: the
    /// model's own template, else the built-in one detected for it.
    #[arg(long)]
    pub template: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub n_predict: usize,
    /// Context size in tokens (default: the model's training context, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// At exit, write a receipt of the session (JSON: model hash, ISA, kernels that ran, token
    /// counts and timings summed over the answers) here.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub load: crate::load::LoadArgs,
    #[command(flatten)]
    pub sampling: crate::sampling_args::SamplingArgs,
    #[command(flatten)]
    pub constraint: crate::constraint_args::ConstraintArgs,
}

const HELP: &str =
    "commands: /help  /clear (forget the conversation)  /system TEXT  /metrics  /save FILE  /exit
end a line with \\ to continue on the next one; Ctrl-C stops the current answer";

/// Speed and context figures of the last answer.
#[derive(Default)]
struct Metrics {
    prompt_tokens: usize,
    prefill_seconds: f64,
    generated: usize,
    decode_seconds: f64,
}

/// Runs `bitnet chat`.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let model_path = crate::load::model_or_default(args.model.as_deref())?;
    let (file, model) = crate::load::load_model(&model_path, &args.load, false)?;
    let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
    if args.load.strict && args.template.is_none() && tokenizer.chat_template().is_none() {
        bail!(
            "--strict: {} has no chat template (tokenizer.chat_template); without --strict a \
             built-in one would be guessed. Name one with --template (see `bitnet templates`)",
            model_path.display()
        );
    }
    let template =
        bitnet_tokenizer::chat::ChatTemplate::resolve(args.template.as_deref(), &tokenizer)?;
    let pool = crate::load::thread_pool(args.threads);
    let constrained = args.constraint.compiler(&tokenizer)?;
    let capacity = args
        .ctx_size
        .unwrap_or_else(|| crate::load::default_context(&model));
    let mut cache = model.new_cache(capacity);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "chatting with {} (template: {}). /help for commands.",
            model_path.display(),
            template.name()
        );
    }

    let system = args.system.clone();
    let mut messages: Vec<Message> = system.iter().map(Message::system).collect();
    let mut in_cache: Vec<u32> = Vec::new();
    let mut metrics = Metrics::default();
    let mut totals = RunTotals::default();
    let mut session_output = String::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let stdout = std::io::stdout();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(input) = read_input(&mut lines, interactive)? else {
            break;
        };
        let input = input.trim();
        if input.is_empty() {
            continue;
        }
        if let Some(command) = input.strip_prefix('/') {
            let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "help" => println!("{HELP}"),
                "exit" | "quit" => break,
                "clear" => {
                    messages.retain(|m| m.role == "system");
                    cache.clear();
                    in_cache.clear();
                    println!("(conversation cleared)");
                }
                "system" => {
                    messages.retain(|m| m.role != "system");
                    if !rest.trim().is_empty() {
                        messages.insert(0, Message::system(rest.trim()));
                    }
                    println!("(system prompt set)");
                }
                "metrics" => println!(
                    "prefill {} tokens at {:.1} t/s | decode {} tokens at {:.1} t/s | context {}/{} tokens",
                    metrics.prompt_tokens,
                    metrics.prompt_tokens as f64 / metrics.prefill_seconds.max(1e-9),
                    metrics.generated,
                    metrics.generated as f64 / metrics.decode_seconds.max(1e-9),
                    cache.len(),
                    cache.capacity()
                ),
                "save" => {
                    let path = rest.trim();
                    if path.is_empty() {
                        println!("usage: /save FILE");
                    } else {
                        std::fs::write(path, serde_json::to_string_pretty(&messages)?)
                            .with_context(|| format!("writing {path}"))?;
                        println!("(saved {} messages to {path})", messages.len());
                    }
                }
                _ => println!("unknown command /{name}\n{HELP}"),
            }
            continue;
        }

        messages.push(Message::user(input));
        let ids = template.encode(&tokenizer, &messages, true)?;
        if ids.len() + 1 >= capacity {
            messages.pop();
            println!("(the conversation needs {} tokens but the context holds {capacity}: /clear to start over)", ids.len());
            continue;
        }
        // Reuse the cached prefix; evaluate at least the last token to get logits.
        let common = in_cache
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        cache.truncate(common);
        let mut request = bitnet_engine::chat_request(
            &template,
            &tokenizer,
            ids[common..].to_vec(),
            args.n_predict.min(capacity - ids.len() - 1),
            args.sampling.params(),
        );
        request.constraint = crate::constraint_args::fresh(&constrained)?;
        interrupted.store(false, Ordering::SeqCst);
        let mut answer = String::new();
        let mut out = stdout.lock();
        let result = generate(&model, &tokenizer, &mut cache, &pool, &request, |text| {
            if interrupted.load(Ordering::SeqCst) {
                return Err("interrupted".into());
            }
            answer.push_str(text);
            write!(out, "{text}")
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())
        });
        writeln!(out)?;
        match result {
            Ok(g) => {
                if g.finish == bitnet_engine::FinishReason::ContextFull {
                    writeln!(
                        out,
                        "(stopped: the context is full; /clear to start over or give a larger -c)"
                    )?;
                }
                totals.add(&g);
                session_output.push_str(&answer);
                metrics = Metrics {
                    prompt_tokens: g.prompt_tokens,
                    prefill_seconds: g.prefill_seconds,
                    generated: g.tokens.len(),
                    decode_seconds: g.decode_seconds,
                };
                in_cache = ids
                    .iter()
                    .chain(&g.tokens)
                    .copied()
                    .take(cache.len())
                    .collect();
            }
            Err(EngineError::Output(reason)) if reason == "interrupted" => {
                writeln!(out, "(stopped)")?;
                in_cache = ids.clone();
                in_cache.truncate(cache.len().min(ids.len()));
                cache.truncate(in_cache.len());
            }
            Err(e) => bail!(e),
        }
        messages.push(Message::assistant(answer.trim_end()));
    }
    if let Some(path) = &args.receipt {
        crate::receipt::write(
            path,
            &crate::receipt::RunSummary {
                model_path: &model_path,
                file: &file,
                threads: pool.threads(),
                totals: &totals,
                max_tokens: args.n_predict,
                output: &session_output,
                sampling: &args.sampling.params(),
            },
        )?;
    }
    Ok(())
}

/// Reads one input: a line, joined with the following ones while it ends in `\`.
/// `None` at the end of input.
fn read_input(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    interactive: bool,
) -> anyhow::Result<Option<String>> {
    let mut text = String::new();
    loop {
        let Some(line) = lines.next() else {
            return Ok((!text.is_empty()).then_some(text));
        };
        let line = line.context("reading stdin")?;
        match line.strip_suffix('\\') {
            Some(part) => {
                text.push_str(part);
                text.push('\n');
                if interactive {
                    eprint!(". ");
                }
            }
            None => {
                text.push_str(&line);
                return Ok(Some(text));
            }
        }
    }
}
