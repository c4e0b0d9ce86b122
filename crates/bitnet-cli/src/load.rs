//! Model loading shared by the subcommands that run a model (`run`, `chat`, `perplexity`,
//! `bench`): the load-time options, one place that opens the file and reports errors, the
//! `--strict` checks that refuse a degraded run, the shipped default model used when no `-m` is
//! given, and the progress bars (stderr, hidden when stderr is not a terminal).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bitnet_gguf::GgufFile;
use bitnet_kernels::{active_isa, select_isa, Isa};
use bitnet_model::{HeadFormat, KvPrecision, LoadOptions, Model};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Load-time options.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// How to hold the output head: `f16` (as stored), `q8_0` (requantized at load; about
    /// half the bytes read per token, near-lossless) or `q6_k` (ggml's 6-bit k-quant, 0.82
    /// bytes per weight, bitnet.cpp's default; a tied embedding's lookups read it too).
    /// Perplexity cost of each: docs/PERFORMANCE.md.
    #[arg(long, default_value = "f16", value_parser = parse_head)]
    pub head: HeadFormat,
    /// Element type of the KV cache: `f16`, `bf16`, `q8_0` (about half the memory of f16;
    /// perplexity cost in docs/PERFORMANCE.md) or `f32` (no F16 rounding anywhere).
    #[arg(long, default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type: KvPrecision,
    /// Refuse instead of degrading silently: a slower instruction set than the CPU has (e.g.
    /// BITNET_ISA=scalar on a SIMD CPU), a `<arch>.` metadata key the model does not read (it
    /// could change the math), and, in `chat`, a model without its own chat template.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub device: crate::device_args::DeviceArgs,
}

fn parse_cache_type(s: &str) -> Result<KvPrecision, String> {
    KvPrecision::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = KvPrecision::ALL.iter().map(|p| p.name()).collect();
        format!("unknown cache type {s:?}: use one of {}", names.join(", "))
    })
}

fn parse_head(s: &str) -> Result<HeadFormat, String> {
    HeadFormat::from_name(s)
        .ok_or_else(|| format!("unknown head format {s:?}: use f16, q8_0 or q6_k"))
}

/// The compute pool for `-t N`, or the default (`BITNET_THREADS`, else the physical cores).
pub fn thread_pool(threads: Option<usize>) -> bitnet_kernels::ThreadPool {
    match threads {
        Some(t) => bitnet_kernels::ThreadPool::new(t),
        None => bitnet_kernels::ThreadPool::with_default_threads(),
    }
}

/// The model shipped in the repository's `models/` (a small BitNet b1.58 trained on the King
/// James Bible and Canterbury corpus texts, see `models/README.md`), resolved at run time from
/// this source tree. `run`, `chat` and `serve` use it when no `-m` is given.
pub const DEFAULT_MODEL_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/bitnet-b158-kjv-29m.gguf"
);

/// The model to load: `model` when given, else the shipped default (named on stderr). A missing
/// default is an error saying where it was looked for and what to do.
pub fn model_or_default(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = model {
        return Ok(path.to_path_buf());
    }
    let path = Path::new(DEFAULT_MODEL_PATH);
    match path.canonicalize() {
        Ok(resolved) if resolved.is_file() => {
            eprintln!(
                "no -m given: using the shipped model {} (a 29M-parameter BitNet b1.58 \
                 trained on the KJV Bible and Canterbury texts)",
                resolved.display()
            );
            Ok(resolved)
        }
        _ => bail!(
            "no -m given and the shipped default model is missing ({}): pass -m MODEL.gguf, \
             or restore the file from the repository (`git checkout -- models/`)",
            path.display()
        ),
    }
}

/// The context a conversation or server gets when `--ctx` is not given: the model's training
/// context, at most 4096 (4096 when the file does not say).
pub fn default_context(model: &Model) -> usize {
    match model.config().n_ctx_train {
        0 => 4096,
        n => n.min(4096),
    }
}

/// Opens `path` and loads the model in it (with `--strict`, after its checks); with
/// `batched_decode` (several sequences decoded together) the ternary matrices also keep what
/// batched steps read fastest ([`LoadOptions::batched_decode`]).
pub fn load_model(
    path: &Path,
    args: &LoadArgs,
    batched_decode: bool,
) -> anyhow::Result<(GgufFile, Model)> {
    check_isa_choice()?;
    if args.strict {
        check_isa()?;
    }
    let gpu = args.device.open()?;
    let bar = spinner(format!("loading {}", path.display()));
    let file = GgufFile::open(path).with_context(|| format!("opening {}", path.display()))?;
    if args.strict {
        check_arch_keys(&file)?;
    }
    let options = LoadOptions {
        head: args.head,
        gpu,
        cache_type: args.cache_type,
        batched_decode,
    };
    let model =
        Model::load_with(&file, options).with_context(|| format!("loading {}", path.display()))?;
    bar.finish_and_clear();
    Ok((file, model))
}

/// A `BITNET_ISA` that names no tier, or one this CPU lacks, is refused (the kernels would
/// otherwise fall back to another tier without saying so).
fn check_isa_choice() -> anyhow::Result<()> {
    if let Err(e) = select_isa() {
        let tiers: Vec<&str> = Isa::supported().iter().map(|isa| isa.name()).collect();
        bail!(
            "{e}; set BITNET_ISA to one of this CPU's tiers ({}) or unset it",
            tiers.join(", ")
        );
    }
    Ok(())
}

/// `--strict`: the kernels must run at the best tier this CPU supports.
fn check_isa() -> anyhow::Result<()> {
    let best = Isa::best_supported();
    let active = active_isa();
    if active < best {
        bail!(
            "--strict: BITNET_ISA forces the {active} kernels on a CPU that supports {best}; \
             unset BITNET_ISA (or drop --strict) to run"
        );
    }
    Ok(())
}

/// `--strict`: every `<arch>.` metadata key must be one the model reads.
fn check_arch_keys(file: &GgufFile) -> anyhow::Result<()> {
    let unread = bitnet_model::config::unread_arch_keys(file);
    if !unread.is_empty() {
        bail!(
            "--strict: the model has metadata this engine does not read and that may change the \
             math: {}",
            unread.join(", ")
        );
    }
    Ok(())
}

/// A bar on stderr for `len` steps, hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), draw_target());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.into());
    bar
}

/// A byte-count bar on stderr, hidden when stderr is not a terminal.
pub fn bytes_bar(len: u64, message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), draw_target());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.into());
    bar
}

/// A spinner on stderr for work of unknown length, hidden when stderr is not a terminal.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
