//! Model loading shared by the subcommands that run a model (`run`, `perplexity`, `bench`): the
//! load-time options and one place that opens the file and reports errors.

use std::path::Path;

use anyhow::Context;
use bitnet_gguf::GgufFile;
use bitnet_model::{HeadFormat, LoadOptions, Model};

/// Load-time options.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// How to hold the output head: `f16` (as stored) or `q8_0` (requantized at load; about
    /// half the bytes read per token, near-lossless).
    #[arg(long, default_value = "f16", value_parser = parse_head)]
    pub head: HeadFormat,
}

fn parse_head(s: &str) -> Result<HeadFormat, String> {
    HeadFormat::from_name(s).ok_or_else(|| format!("unknown head format {s:?}: use f16 or q8_0"))
}

/// Opens `path` and loads the model in it.
pub fn load_model(path: &Path, args: &LoadArgs) -> anyhow::Result<(GgufFile, Model)> {
    let file = GgufFile::open(path).with_context(|| format!("opening {}", path.display()))?;
    let model = Model::load_with(&file, LoadOptions { head: args.head })
        .with_context(|| format!("loading {}", path.display()))?;
    Ok((file, model))
}
