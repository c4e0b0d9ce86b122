//! `bitnet convert`: a Hugging Face BitNet or BERT checkpoint (safetensors) to a GGUF file. Parses the
//! arguments and calls `bitnet_convert::convert`; the progress bar goes to stderr when it is a
//! terminal.

use std::path::PathBuf;

use anyhow::Context;
use bitnet_convert::{ConvertOptions, OutputType};

/// Convert a Hugging Face checkpoint (BitNetForCausalLM or a BERT encoder, safetensors) to GGUF.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint directory: config.json, model.safetensors (or model.safetensors.index.json and
    /// its shards), tokenizer.model or tokenizer.json (BERT: tokenizer.json or vocab.txt),
    /// optionally tokenizer_config.json (and 1_Pooling/config.json for sentence-transformers).
    pub hf_dir: PathBuf,
    /// Output GGUF file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Storage type of the ternary linear weights (embeddings are F16, norms F32); for a BERT
    /// checkpoint, of its matrices: f32, f16 or q8_0 (norms, biases F32).
    #[arg(long = "type", default_value = "i2_s", value_parser = parse_type)]
    pub output_type: OutputType,
    /// general.name (default: the config's _name_or_path, else the directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_type(s: &str) -> Result<OutputType, String> {
    OutputType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = OutputType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown type {s:?}; choose one of {}", names.join(", "))
    })
}

/// Runs the conversion and prints a one-line summary.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let opts = ConvertOptions {
        output_type: args.output_type,
        name: args.name,
        progress: !args.no_progress,
    };
    let summary =
        bitnet_convert::convert(&args.hf_dir, &args.output, &opts).with_context(|| {
            format!(
                "converting {} to {}",
                args.hf_dir.display(),
                args.output.display()
            )
        })?;
    println!(
        "wrote {} ({}, {}, {} tensors, {} bytes)",
        args.output.display(),
        summary.architecture,
        args.output_type,
        summary.n_tensors,
        summary.n_bytes
    );
    Ok(())
}
