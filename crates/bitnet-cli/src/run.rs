//! `bitnet run`: one-shot greedy generation. The prompt is tokenized (BOS iff the model adds
//! it, special tokens parsed), evaluated in one batch, then one token at a time is chosen by
//! argmax and streamed to stdout until `-n` tokens or an end-of-generation token.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use bitnet_kernels::ThreadPool;
use bitnet_tokenizer::{EncodeOptions, Tokenizer};

/// Arguments of `bitnet run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
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
    #[command(flatten)]
    pub load: crate::load::LoadArgs,
}

/// Runs `bitnet run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let load_start = Instant::now();
    let (file, model) = crate::load::load_model(&args.model, &args.load)?;
    let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
    let load_s = load_start.elapsed().as_secs_f64();
    let pool = match args.threads {
        Some(t) => ThreadPool::new(t),
        None => ThreadPool::with_default_threads(),
    };

    let prompt = tokenizer.encode_with(
        &args.prompt,
        EncodeOptions {
            add_special: true,
            parse_special: true,
        },
    )?;
    if prompt.is_empty() {
        bail!("the prompt tokenizes to nothing; give some text");
    }
    let wanted = prompt.len() + args.n_predict;
    let capacity = match args.ctx_size {
        Some(c) => c,
        None if model.config().n_ctx_train > 0 => wanted.min(model.config().n_ctx_train),
        None => wanted,
    };
    if prompt.len() >= capacity {
        bail!(
            "the prompt has {} tokens; the context holds {capacity}",
            prompt.len()
        );
    }
    let mut cache = model.new_cache(capacity);

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.echo {
        write!(out, "{}", args.prompt)?;
    }
    let prefill_start = Instant::now();
    let mut logits = model.forward(&prompt, &mut cache, prompt.len() - 1, &pool)?;
    let prefill_s = prefill_start.elapsed().as_secs_f64();

    let mut decoder = tokenizer.stream_decoder(false);
    let decode_start = Instant::now();
    let mut generated = 0usize;
    while generated < args.n_predict {
        let next = argmax(&logits);
        generated += 1;
        if tokenizer.is_end_of_generation(next) {
            break;
        }
        write!(out, "{}", decoder.push(next)?)?;
        out.flush()?;
        if generated == args.n_predict || cache.len() == cache.capacity() {
            break;
        }
        logits = model.forward(&[next], &mut cache, 0, &pool)?;
    }
    write!(out, "{}", decoder.finish())?;
    writeln!(out)?;
    out.flush()?;
    let decode_s = decode_start.elapsed().as_secs_f64();
    eprintln!(
        "load {load_s:.2} s | prompt {} tokens in {prefill_s:.3} s ({:.1} t/s) | generated {generated} tokens in {decode_s:.3} s ({:.1} t/s)",
        prompt.len(),
        prompt.len() as f64 / prefill_s.max(1e-9),
        generated as f64 / decode_s.max(1e-9),
    );
    Ok(())
}

/// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}
