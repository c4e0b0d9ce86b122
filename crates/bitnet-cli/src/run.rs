//! `bitnet run`: one-shot generation. The prompt is tokenized (BOS iff the model adds it,
//! special tokens parsed) and handed to the engine's generation loop, which streams the text to
//! stdout until `-n` tokens, an end-of-generation token or a `--stop` string. Greedy by default
//! (`--temp 0`); llama.cpp's sampling flags otherwise. `--receipt FILE` writes a JSON record of
//! what ran (see `crate::receipt`). `--json-schema FILE` / `--grammar FILE` constrain the output.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bitnet_engine::{generate, GenerateRequest, RunTotals};
use bitnet_tokenizer::Tokenizer;

/// Arguments of `bitnet run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// GGUF model file (default: the shipped model in `models/`).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Prompt text.
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Number of tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// KV cache size in tokens (default: prompt + n-predict, at most the training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Also print the prompt before the generated text.
    #[arg(long)]
    pub echo: bool,
    /// Stop when this text is generated (not printed); may be repeated.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Write a receipt (JSON: model hash, ISA, kernels that ran, token counts, timings) here.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub load: crate::load::LoadArgs,
    #[command(flatten)]
    pub sampling: crate::sampling_args::SamplingArgs,
    #[command(flatten)]
    pub constraint: crate::constraint_args::ConstraintArgs,
}

/// Runs `bitnet run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let model_path = crate::load::model_or_default(args.model.as_deref())?;
    let load_start = Instant::now();
    let (file, model) = crate::load::load_model(&model_path, &args.load, false)?;
    let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
    let load_s = load_start.elapsed().as_secs_f64();
    let pool = crate::load::thread_pool(args.threads);
    let constrained = args.constraint.compiler(&tokenizer)?;

    let prompt = bitnet_engine::encode_prompt(&tokenizer, &args.prompt)?;
    let capacity =
        bitnet_engine::one_shot_capacity(&model, prompt.len(), args.n_predict, args.ctx_size)?;
    let mut cache = model.new_cache(capacity);

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.echo {
        write!(out, "{}", args.prompt)?;
    }
    let request = GenerateRequest {
        prompt,
        max_tokens: args.n_predict,
        sampling: args.sampling.params(),
        stop: args.stop.clone(),
        stop_tokens: Vec::new(),
        show_special: false,
        constraint: crate::constraint_args::fresh(&constrained)?,
    };
    let mut output = String::new();
    let generation = generate(&model, &tokenizer, &mut cache, &pool, &request, |text| {
        output.push_str(text);
        write!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    })?;
    writeln!(out)?;
    out.flush()?;
    if generation.finish == bitnet_engine::FinishReason::ContextFull {
        eprintln!(
            "(stopped: the context of {} tokens is full; give a larger -c to generate more)",
            cache.capacity()
        );
    }
    let n = generation.tokens.len();
    eprintln!(
        "load {load_s:.2} s | prompt {} tokens in {:.3} s ({:.1} t/s) | generated {n} tokens in {:.3} s ({:.1} t/s)",
        generation.prompt_tokens,
        generation.prefill_seconds,
        generation.prompt_tokens as f64 / generation.prefill_seconds.max(1e-9),
        generation.decode_seconds,
        n as f64 / generation.decode_seconds.max(1e-9),
    );
    if let Some(path) = &args.receipt {
        let mut totals = RunTotals::default();
        totals.add(&generation);
        crate::receipt::write(
            path,
            &crate::receipt::RunSummary {
                model_path: &model_path,
                file: &file,
                threads: pool.threads(),
                totals: &totals,
                max_tokens: args.n_predict,
                output: &output,
                sampling: &request.sampling,
            },
        )?;
    }
    Ok(())
}
