//! `bitnet perplexity`: llama-perplexity compatible scoring of a text file (chunks of `-c`
//! tokens, second half of each scored), printing llama.cpp's `[i]running` list and its
//! `Final estimate: PPL = X +/- Y` line. A progress bar over the chunks runs on stderr when it
//! is a terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bitnet_model::perplexity;
use bitnet_tokenizer::Tokenizer;

/// Arguments of `bitnet perplexity`.
#[derive(Debug, clap::Args)]
pub struct PerplexityArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Text file to score (read as UTF-8, as is).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Maximum number of chunks (default: all).
    #[arg(long, default_value_t = usize::MAX)]
    pub chunks: usize,
    /// Threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub load: crate::load::LoadArgs,
}

/// Runs `bitnet perplexity`.
pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    let (file, model) = crate::load::load_model(&args.model, &args.load, false)?;
    let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let pool = crate::load::thread_pool(args.threads);
    let tokens = bitnet_engine::perplexity_tokens(&tokenizer, &text)?;
    let params = bitnet_engine::perplexity_params(&tokenizer, args.ctx_size, args.chunks);
    let n_chunks = (tokens.len() / args.ctx_size.max(1)).min(args.chunks);
    eprintln!(
        "perplexity: tokenized {} into {} tokens; {n_chunks} chunks of {}",
        args.file.display(),
        tokens.len(),
        args.ctx_size
    );
    let start = Instant::now();
    let stdout = std::io::stdout();
    let bar = crate::load::progress_bar(n_chunks as u64, "perplexity");
    let report = perplexity(&model, &tokens, params, &pool, |i, running| {
        bar.set_position(i as u64 + 1);
        let mut out = stdout.lock();
        // Progress in llama-perplexity's format; write errors surface at the final line.
        let _ = write!(out, "[{}]{running:.4},", i + 1);
        let _ = out.flush();
    })?;
    bar.finish_and_clear();
    let mut out = stdout.lock();
    writeln!(out)?;
    for (i, p) in report.chunk_ppl.iter().enumerate() {
        eprintln!("chunk {:>3}: PPL {p:.4}", i + 1);
    }
    eprintln!(
        "{} tokens scored in {:.1} s",
        report.n_scored,
        start.elapsed().as_secs_f64()
    );
    writeln!(
        out,
        "Final estimate: PPL = {:.4} +/- {:.5}",
        report.ppl, report.stderr
    )?;
    Ok(())
}
