//! The `bitnet` binary: parses the command line and calls the library crates. Each subcommand
//! lives in its own module; nothing here computes.

#![forbid(unsafe_code)]

mod bench;
mod chat;
mod constraint_args;
mod convert;
mod cpu_steal;
mod device_args;
mod embed;
mod health_check;
mod inspect;
mod load;
mod perplexity;
mod receipt;
mod rerank;
mod run;
mod sampling_args;
mod serve;
mod synth;
mod tokenize;

use clap::{Parser, Subcommand};

/// Weights, KV caches and other large buffers in transparent huge pages (see
/// `bitnet_kernels::memory`): decode streams every weight per token.
#[global_allocator]
static ALLOCATOR: bitnet_kernels::memory::HugePageAllocator =
    bitnet_kernels::memory::HugePageAllocator;

/// bitnet: inference for 1-bit (ternary) LLMs and llama-family GGUF models.
#[derive(Parser)]
#[command(name = "bitnet", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt, streamed to stdout.
    Run(run::RunArgs),
    /// Chat with a model under its chat template (a REPL; /help for commands).
    Chat(chat::ChatArgs),
    /// Perplexity of a text file, computed as llama-perplexity does.
    Perplexity(perplexity::PerplexityArgs),
    /// Show what a GGUF file holds: architecture, hyperparameters, tokenizer, tensors.
    Inspect(inspect::InspectArgs),
    /// Tokenize text with a model's tokenizer and print ids and pieces.
    Tokenize(tokenize::TokenizeArgs),
    /// List the built-in chat templates (or show which one a model gets).
    Templates(tokenize::TemplatesArgs),
    /// Measure prompt-processing and generation speed (llama-bench conventions).
    Bench(bench::BenchArgs),
    /// Convert a Hugging Face BitNet or BERT checkpoint to GGUF.
    Convert(convert::ConvertArgs),
    /// Sentence embeddings from an embedding model (BERT, BitNet embedding), one vector per text.
    Embed(embed::EmbedArgs),
    /// Relevance scores of documents for a query from a reranker (a BERT cross-encoder).
    Rerank(rerank::RerankArgs),
    /// Write a random-weight ternary model of a real shape, for benchmarks.
    Synth(synth::SynthArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, with a chat page at `/`.
    Serve(serve::ServeArgs),
    /// Ask a running server for GET /health: exit 0 when it answers 200, else 1 with the reason.
    HealthCheck(health_check::HealthCheckArgs),
    /// List the CPU and the GPU adapters (backend, limits, features) for --device
    Devices(device_args::DevicesArgs),
    /// Check a run receipt's gates (PASS/FAIL per gate; exit status 1 if any fails).
    #[command(long_about = receipt::GATES_HELP)]
    VerifyReceipt(receipt::VerifyReceiptArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Templates(args) => tokenize::run_templates(args),
        Command::Bench(args) => bench::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Rerank(args) => rerank::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Serve(args) => serve::run(args),
        Command::HealthCheck(args) => health_check::run(&args),
        Command::Devices(args) => device_args::run(args),
        Command::VerifyReceipt(args) => receipt::run(args),
    }
}
