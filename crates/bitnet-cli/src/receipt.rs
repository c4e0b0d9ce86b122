//! Run receipts in the CLI: writing one after `bitnet run` / `bitnet chat` (`--receipt FILE`),
//! and `bitnet verify-receipt FILE [-m MODEL]`, which prints every gate of
//! `bitnet_engine::receipt` with PASS/FAIL and its name and fails if any gate fails.
//!
//! Gates: `schema_version` (parses, known version); `compute_path` (is "real");
//! `kernels_recorded` (kernel id list non-empty); `kernels_exist` (every id is a kernel of this
//! build); `isa` (a known tier); `token_counts` (prompt tokens > 0, known finish reason, tokens
//! generated unless the finish reason says none could be); `timings` (tokens/s = tokens ÷
//! seconds within 1%); `plausible_speed` (decode t/s ≤ 200 GB/s ÷ weight bytes, prefill t/s ≤
//! 100 Tops ÷ 2·parameters); `output_hash` (64 hex); `model_hash` (64 hex, and equal to the
//! sha256 of `-m MODEL` when given).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bitnet_engine::receipt::{sha256_file, verify_json, ModelRecord, Receipt, RunTotals};
use bitnet_engine::SamplingParams;
use bitnet_gguf::GgufFile;

/// `bitnet verify-receipt --help`: what each gate checks.
pub const GATES_HELP: &str =
    "Check a run receipt (from `bitnet run --receipt FILE`). Each gate is \
printed with PASS or FAIL and its name; the exit status is 1 if any fails.

Gates:
  schema_version    the receipt parses and its schema version is known to this build
  compute_path      compute_path is \"real\"
  kernels_recorded  the list of kernel ids recorded at dispatch is not empty
  kernels_exist     every kernel id names a kernel of this build
  isa               the instruction-set tier is one this build knows (scalar, avx2, avx512)
  token_counts      prompt tokens > 0, the finish reason is known, and tokens were generated
                    unless the finish reason says none could be (length with -n 0, context_full)
  timings           seconds are finite and >= 0; each tokens/s equals tokens / seconds within 1%
  plausible_speed   decode t/s <= 200 GB/s / weight bytes (each token reads every weight);
                    prefill t/s <= 100 Tops / (2 x parameters)
  output_hash       the output sha256 is 64 lowercase hex digits
  model_hash        the model sha256 is 64 lowercase hex digits and, with -m, equals the
                    sha256 of that file";

/// Arguments of `bitnet verify-receipt`.
#[derive(Debug, clap::Args)]
pub struct VerifyReceiptArgs {
    /// Receipt (JSON) to check.
    pub file: PathBuf,
    /// The model file the run used: its sha256 must equal the receipt's.
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
}

/// Runs `bitnet verify-receipt`.
pub fn run(args: VerifyReceiptArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let model_sha = match &args.model {
        Some(path) => Some(hash_model(path)?),
        None => None,
    };
    let gates = verify_json(&text, model_sha.as_deref());
    for g in &gates {
        println!(
            "{} {:<17} {}",
            if g.passed { "PASS" } else { "FAIL" },
            g.name,
            g.detail
        );
    }
    let failed: Vec<&str> = gates.iter().filter(|g| !g.passed).map(|g| g.name).collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} gates failed: {}",
            failed.len(),
            gates.len(),
            failed.join(", ")
        );
    }
    println!("receipt OK: {} gates passed", gates.len());
    Ok(())
}

/// sha256 of a model file, with a byte progress bar.
fn hash_model(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let bar = crate::load::bytes_bar(len, format!("sha256 {}", path.display()));
    let sha = sha256_file(path, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    Ok(sha)
}

/// What a finished run hands to [`write`].
pub struct RunSummary<'a> {
    pub model_path: &'a Path,
    pub file: &'a GgufFile,
    pub threads: usize,
    pub totals: &'a RunTotals,
    pub max_tokens: usize,
    pub output: &'a str,
    pub sampling: &'a SamplingParams,
}

/// Writes the receipt of a finished run to `out` (kernel ids are read now, after the run).
pub fn write(out: &Path, run: &RunSummary) -> anyhow::Result<()> {
    let sha = hash_model(run.model_path)?;
    let model = ModelRecord::new(run.model_path, run.file, sha)?;
    let receipt = Receipt::record(
        model,
        run.threads,
        run.totals,
        run.max_tokens,
        run.output,
        run.sampling,
    );
    std::fs::write(out, receipt.to_json() + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("receipt written to {}", out.display());
    Ok(())
}
