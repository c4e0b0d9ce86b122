//! Run receipts: a JSON record of what actually ran (model file and its sha256, the instruction
//! set and the kernel ids the kernels recorded at dispatch, threads, token counts, timings, a hash
//! of the output, sampling parameters), and the gates that check one.
//!
//! Gates (each printed by `bitnet verify-receipt` with PASS/FAIL and its name):
//! - `schema_version`: the receipt parses and its schema version is one this build knows.
//! - `compute_path`: `compute_path` is `"real"` (a real forward pass, nothing simulated).
//! - `kernels_recorded`: the kernel id list is non-empty (some kernel really ran).
//! - `kernels_exist`: every kernel id is one this build has (`KernelId::ALL` names).
//! - `isa`: the instruction set is a tier this build knows (`scalar`, `avx2`, `avx512`).
//! - `token_counts`: the prompt has tokens, the finish reason is known, and tokens were generated
//!   unless the finish reason says none could be (`length` with a limit of 0, `context_full`).
//! - `timings`: seconds are finite and non-negative, and each tokens/s figure equals
//!   tokens ÷ seconds within 1%.
//! - `plausible_speed`: decode tokens/s is at most [`MEMORY_BANDWIDTH_BOUND`] ÷ weight bytes (every
//!   decoded token reads every weight once), and prefill tokens/s is at most
//!   [`COMPUTE_BOUND_OPS`] ÷ (2 × parameters) (two operations per weight per token).
//! - `output_hash`: the output hash is 64 lowercase hex digits.
//! - `model_hash`: the model hash is 64 lowercase hex digits and, when the model file is given,
//!   equals that file's sha256.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bitnet_gguf::GgufFile;
use bitnet_kernels::{active_isa, kernels_used, Isa, KernelId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::generate::{FinishReason, Generation};
use crate::sampling::SamplingParams;

/// The receipt schema this build writes and checks.
pub const SCHEMA_VERSION: u32 = 1;

/// Memory bandwidth (bytes/s) no CPU reaches, used to bound decode speed: 200 GB/s.
pub const MEMORY_BANDWIDTH_BOUND: f64 = 200e9;

/// Arithmetic throughput (operations/s) no CPU reaches, used to bound prefill speed: 100 T.
pub const COMPUTE_BOUND_OPS: f64 = 100e12;

/// Relative tolerance between a recorded tokens/s figure and tokens ÷ seconds.
pub const RATE_TOLERANCE: f64 = 0.01;

/// Errors reading or writing receipts.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a receipt: {0}")]
    Json(#[from] serde_json::Error),
}

/// The model file a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub path: String,
    /// sha256 of the whole file, lowercase hex.
    pub sha256: String,
    pub file_bytes: u64,
    /// Bytes of tensor data (what a decode step reads).
    pub weight_bytes: u64,
    /// Total tensor elements.
    pub parameters: u64,
    pub architecture: String,
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    /// Number of tensors of each GGML type.
    pub tensor_types: BTreeMap<String, usize>,
}

impl ModelRecord {
    /// Describes the opened model file at `path`; `sha256` comes from [`sha256_file`].
    pub fn new(path: &Path, file: &GgufFile, sha256: String) -> Result<Self, ReceiptError> {
        let file_bytes = std::fs::metadata(path)
            .map_err(|source| ReceiptError::Io {
                path: path.display().to_string(),
                source,
            })?
            .len();
        let mut tensor_types = BTreeMap::new();
        for t in file.tensors() {
            *tensor_types
                .entry(t.ggml_type.name().to_string())
                .or_insert(0) += 1;
        }
        Ok(ModelRecord {
            path: path.display().to_string(),
            sha256,
            file_bytes,
            weight_bytes: file.tensors().iter().map(|t| t.n_bytes).sum(),
            parameters: file.tensors().iter().map(|t| t.n_elements).sum(),
            architecture: file.architecture().unwrap_or("").to_string(),
            name: file.get_str("general.name").map(str::to_string),
            tensor_types,
        })
    }
}

/// The sampling parameters of a run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingRecord {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl From<&SamplingParams> for SamplingRecord {
    fn from(p: &SamplingParams) -> Self {
        SamplingRecord {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            typical_p: p.typical_p,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: p.repeat_last_n,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            logit_bias: p.logit_bias.clone(),
            seed: p.seed,
        }
    }
}

/// Token counts and timings summed over one or more generations (a chat session has several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// How the last generation ended; `None` if none ran.
    pub finish: Option<FinishReason>,
}

impl RunTotals {
    /// Adds one finished generation.
    pub fn add(&mut self, g: &Generation) {
        self.prompt_tokens += g.prompt_tokens;
        self.generated_tokens += g.tokens.len();
        self.prefill_seconds += g.prefill_seconds;
        self.decode_seconds += g.decode_seconds;
        self.finish = Some(g.finish);
    }
}

/// The receipt name of a finish reason.
pub fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::EndOfGeneration => "end_of_generation",
        FinishReason::StopString => "stop_string",
        FinishReason::Length => "length",
        FinishReason::ContextFull => "context_full",
    }
}

/// Finish reason written when no generation ran.
const NO_GENERATION: &str = "none";

/// What one run (or chat session) actually did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub schema_version: u32,
    /// `"real"`: produced by a forward pass through the model.
    pub compute_path: String,
    pub engine_version: String,
    /// When the receipt was written, RFC 3339 UTC.
    pub timestamp: String,
    pub model: ModelRecord,
    /// The active instruction-set tier.
    pub isa: String,
    /// Kernel ids recorded at dispatch during the run.
    pub kernels: Vec<String>,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// The generation limit (`-n`).
    pub max_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    /// sha256 of the generated text (UTF-8), lowercase hex.
    pub output_sha256: String,
    pub finish_reason: String,
    pub sampling: SamplingRecord,
}

impl Receipt {
    /// Records a finished run. The ISA and kernel ids are read now, from what the kernels
    /// recorded, so call this after the run.
    pub fn record(
        model: ModelRecord,
        threads: usize,
        totals: &RunTotals,
        max_tokens: usize,
        output: &str,
        sampling: &SamplingParams,
    ) -> Receipt {
        Receipt {
            schema_version: SCHEMA_VERSION,
            compute_path: "real".into(),
            engine_version: env!("CARGO_PKG_VERSION").into(),
            timestamp: rfc3339_utc(SystemTime::now()),
            model,
            isa: active_isa().name().into(),
            kernels: kernels_used().into_iter().map(str::to_string).collect(),
            threads,
            prompt_tokens: totals.prompt_tokens,
            generated_tokens: totals.generated_tokens,
            max_tokens,
            prefill_seconds: totals.prefill_seconds,
            decode_seconds: totals.decode_seconds,
            prefill_tokens_per_second: rate(totals.prompt_tokens, totals.prefill_seconds),
            decode_tokens_per_second: rate(totals.generated_tokens, totals.decode_seconds),
            output_sha256: hex(&Sha256::digest(output.as_bytes())),
            finish_reason: totals.finish.map_or(NO_GENERATION, finish_name).to_string(),
            sampling: sampling.into(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail; non-finite floats become null.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a receipt.
    pub fn from_json(text: &str) -> Result<Receipt, ReceiptError> {
        Ok(serde_json::from_str(text)?)
    }
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if tokens == 0 || seconds <= 0.0 {
        0.0
    } else {
        tokens as f64 / seconds
    }
}

/// Streams a file through sha256, calling `progress` with the bytes read so far.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64)) -> Result<String, ReceiptError> {
    let io_err = |source| ReceiptError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time (whole seconds, UTC).
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The outcome of one gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    /// The gate's name, as documented in this module.
    pub name: &'static str,
    pub passed: bool,
    /// What was checked, with the figures.
    pub detail: String,
}

fn gate(name: &'static str, passed: bool, detail: String) -> GateResult {
    GateResult {
        name,
        passed,
        detail,
    }
}

/// Checks receipt text against every gate. A text that does not parse fails `schema_version`
/// and nothing else is checked. `model_sha256` is the model file's hash, when it was given.
pub fn verify_json(text: &str, model_sha256: Option<&str>) -> Vec<GateResult> {
    match Receipt::from_json(text) {
        Ok(r) => verify(&r, model_sha256),
        Err(e) => vec![gate("schema_version", false, e.to_string())],
    }
}

/// Checks a parsed receipt against every gate (see the module documentation).
pub fn verify(r: &Receipt, model_sha256: Option<&str>) -> Vec<GateResult> {
    let mut gates = Vec::new();
    gates.push(gate(
        "schema_version",
        r.schema_version == SCHEMA_VERSION,
        format!(
            "schema version {} (this build knows {SCHEMA_VERSION})",
            r.schema_version
        ),
    ));
    gates.push(gate(
        "compute_path",
        r.compute_path == "real",
        format!("compute_path {:?} (must be \"real\")", r.compute_path),
    ));
    gates.push(gate(
        "kernels_recorded",
        !r.kernels.is_empty(),
        format!("{} kernel ids recorded", r.kernels.len()),
    ));
    let known: Vec<&str> = KernelId::ALL.iter().map(|k| k.name()).collect();
    let unknown: Vec<&str> = r
        .kernels
        .iter()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    gates.push(gate(
        "kernels_exist",
        unknown.is_empty(),
        if unknown.is_empty() {
            format!("all of {:?} exist in this build", r.kernels)
        } else {
            format!("not kernels of this build: {unknown:?}")
        },
    ));
    gates.push(gate(
        "isa",
        Isa::from_name(&r.isa).is_ok() && r.isa == r.isa.trim().to_ascii_lowercase(),
        format!("isa {:?}", r.isa),
    ));
    gates.push(check_token_counts(r));
    gates.push(check_timings(r));
    gates.push(check_plausible_speed(r));
    gates.push(gate(
        "output_hash",
        is_sha256_hex(&r.output_sha256),
        format!("output sha256 {:?}", r.output_sha256),
    ));
    gates.push(check_model_hash(r, model_sha256));
    gates
}

fn check_token_counts(r: &Receipt) -> GateResult {
    let known_finish = [
        FinishReason::EndOfGeneration,
        FinishReason::StopString,
        FinishReason::Length,
        FinishReason::ContextFull,
    ]
    .map(finish_name);
    let detail = format!(
        "{} prompt tokens, {} generated (limit {}), finish {:?}",
        r.prompt_tokens, r.generated_tokens, r.max_tokens, r.finish_reason
    );
    let none_possible = (r.finish_reason == "length" && r.max_tokens == 0)
        || r.finish_reason == finish_name(FinishReason::ContextFull);
    let passed = r.prompt_tokens > 0
        && known_finish.contains(&r.finish_reason.as_str())
        && (r.generated_tokens > 0 || none_possible);
    gate("token_counts", passed, detail)
}

fn check_timings(r: &Receipt) -> GateResult {
    let consistent = |tokens: usize, seconds: f64, recorded: f64| -> bool {
        if !seconds.is_finite() || seconds < 0.0 || !recorded.is_finite() || recorded < 0.0 {
            return false;
        }
        if tokens == 0 {
            return recorded == 0.0;
        }
        if seconds == 0.0 {
            return false;
        }
        let expected = tokens as f64 / seconds;
        (recorded - expected).abs() <= RATE_TOLERANCE * expected
    };
    let prefill = consistent(
        r.prompt_tokens,
        r.prefill_seconds,
        r.prefill_tokens_per_second,
    );
    let decode = consistent(
        r.generated_tokens,
        r.decode_seconds,
        r.decode_tokens_per_second,
    );
    gate(
        "timings",
        prefill && decode,
        format!(
            "prefill {} tokens / {:.6} s = {:.2} t/s (recorded {:.2}); decode {} tokens / {:.6} s = {:.2} t/s (recorded {:.2})",
            r.prompt_tokens,
            r.prefill_seconds,
            rate(r.prompt_tokens, r.prefill_seconds),
            r.prefill_tokens_per_second,
            r.generated_tokens,
            r.decode_seconds,
            rate(r.generated_tokens, r.decode_seconds),
            r.decode_tokens_per_second
        ),
    )
}

fn check_plausible_speed(r: &Receipt) -> GateResult {
    let m = &r.model;
    if m.weight_bytes == 0 || m.parameters == 0 {
        return gate(
            "plausible_speed",
            false,
            format!(
                "the model record has {} weight bytes and {} parameters",
                m.weight_bytes, m.parameters
            ),
        );
    }
    let decode_bound = MEMORY_BANDWIDTH_BOUND / m.weight_bytes as f64;
    let prefill_bound = COMPUTE_BOUND_OPS / (2.0 * m.parameters as f64);
    gate(
        "plausible_speed",
        r.decode_tokens_per_second <= decode_bound && r.prefill_tokens_per_second <= prefill_bound,
        format!(
            "decode {:.1} t/s <= {decode_bound:.1} ({:.0} GB/s over {} weight bytes); prefill {:.1} t/s <= {prefill_bound:.1} ({:.0} Tops over 2 x {} parameters)",
            r.decode_tokens_per_second,
            MEMORY_BANDWIDTH_BOUND / 1e9,
            m.weight_bytes,
            r.prefill_tokens_per_second,
            COMPUTE_BOUND_OPS / 1e12,
            m.parameters
        ),
    )
}

fn check_model_hash(r: &Receipt, model_sha256: Option<&str>) -> GateResult {
    let recorded = &r.model.sha256;
    if !is_sha256_hex(recorded) {
        return gate(
            "model_hash",
            false,
            format!("model sha256 {recorded:?} is not 64 lowercase hex digits"),
        );
    }
    match model_sha256 {
        None => gate(
            "model_hash",
            true,
            format!("model sha256 {recorded} present (no model file given to compare)"),
        ),
        Some(actual) => gate(
            "model_hash",
            actual == recorded,
            format!("receipt {recorded}, file {actual}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        // Reference instants from `date -u -d @SECS`.
        let at = |s| rfc3339_utc(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn text_that_is_not_a_receipt_fails_the_schema_gate_only() {
        let gates = verify_json(r#"{"schema_version": 1}"#, None);
        assert_eq!(gates.len(), 1);
        assert_eq!(gates[0].name, "schema_version");
        assert!(!gates[0].passed);
        assert!(
            gates[0].detail.contains("missing field"),
            "{}",
            gates[0].detail
        );
    }

    #[test]
    fn sha256_of_abc_is_the_fips_vector() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
