//! `bitnet inspect FILE [--tensors] [--json]`: what a GGUF file holds. The text form summarises
//! (architecture, hyperparameters, tokenizer, chat template, tensors per type, file type,
//! alignment, version); `--tensors` adds the tensor table; `--json` prints every metadata value
//! in full (nested arrays kept nested) and the whole tensor table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use bitnet_gguf::{Dialects, GgufFile, MetadataValue, TensorInfo};
use serde_json::{json, Value};

/// Arguments of `bitnet inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The GGUF file.
    pub file: PathBuf,
    /// Also list every tensor (name, type, shape, bytes, offset).
    #[arg(long)]
    pub tensors: bool,
    /// Print JSON: all metadata in full and the tensor list.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.file)
        .with_context(|| format!("cannot inspect {}", args.file.display()))?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&to_json(&file, &args.file))?;
        s.push('\n');
        s
    } else {
        summary(&file, &args.file, args.tensors)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A metadata value as JSON: integers exact, floats as f64 (non-finite as "nan"/"inf"/"-inf"),
/// arrays nested as stored.
pub fn value_to_json(v: &MetadataValue) -> Value {
    let float = |x: f64| {
        if x.is_nan() {
            json!("nan")
        } else if x.is_infinite() {
            json!(if x > 0.0 { "inf" } else { "-inf" })
        } else {
            json!(x)
        }
    };
    match v {
        MetadataValue::U8(x) => json!(x),
        MetadataValue::I8(x) => json!(x),
        MetadataValue::U16(x) => json!(x),
        MetadataValue::I16(x) => json!(x),
        MetadataValue::U32(x) => json!(x),
        MetadataValue::I32(x) => json!(x),
        MetadataValue::U64(x) => json!(x),
        MetadataValue::I64(x) => json!(x),
        MetadataValue::F32(x) => float(f64::from(*x)),
        MetadataValue::F64(x) => float(*x),
        MetadataValue::Bool(x) => json!(x),
        MetadataValue::String(s) => json!(s),
        MetadataValue::Array(items) => Value::Array(items.iter().map(value_to_json).collect()),
    }
}

fn tensor_json(t: &TensorInfo) -> Value {
    json!({
        "name": t.name,
        "type": t.ggml_type.name(),
        "type_id": t.type_id,
        "shape": t.dims,
        "n_elements": t.n_elements,
        "n_bytes": t.n_bytes,
        "offset": t.offset,
    })
}

fn to_json(f: &GgufFile, path: &std::path::Path) -> Value {
    let metadata: Vec<Value> = f
        .metadata()
        .iter()
        .map(|(k, v)| {
            let mut entry = json!({ "key": k, "type": v.type_name(), "value": value_to_json(v) });
            if let Some(first) = v.as_array().and_then(|a| a.first()) {
                entry["element_type"] = json!(first.type_name());
            }
            entry
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "file_size": f.as_bytes().len(),
        "version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "architecture": f.architecture(),
        "metadata": metadata,
        "tensors": f.tensors().iter().map(tensor_json).collect::<Vec<_>>(),
    })
}

/// A short rendering of a value for the text summary (long arrays abbreviated).
fn short(v: &MetadataValue) -> String {
    match v {
        MetadataValue::String(s) if s.chars().count() > 60 => {
            format!(
                "{:?}… ({} bytes)",
                s.chars().take(60).collect::<String>(),
                s.len()
            )
        }
        MetadataValue::String(s) => format!("{s:?}"),
        MetadataValue::Array(items) if items.len() > 8 => {
            let head: Vec<String> = items.iter().take(4).map(short).collect();
            format!(
                "[{}, …] ({} × {})",
                head.join(", "),
                items.len(),
                items[0].type_name()
            )
        }
        MetadataValue::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(short).collect::<Vec<_>>().join(", ")
            )
        }
        MetadataValue::F32(x) => format!("{x:?}"),
        MetadataValue::F64(x) => format!("{x:?}"),
        other => value_to_json(other).to_string(),
    }
}

/// llama.cpp's `llama_ftype` names (`general.file_type`); 38..=40 differ between mainline and
/// bitnet.cpp.
fn file_type_name(ft: u64, dialects: Dialects) -> Option<&'static str> {
    Some(match ft {
        0 => "ALL_F32",
        1 => "MOSTLY_F16",
        2 => "MOSTLY_Q4_0",
        3 => "MOSTLY_Q4_1",
        7 => "MOSTLY_Q8_0",
        8 => "MOSTLY_Q5_0",
        9 => "MOSTLY_Q5_1",
        10 => "MOSTLY_Q2_K",
        11 => "MOSTLY_Q3_K_S",
        12 => "MOSTLY_Q3_K_M",
        13 => "MOSTLY_Q3_K_L",
        14 => "MOSTLY_Q4_K_S",
        15 => "MOSTLY_Q4_K_M",
        16 => "MOSTLY_Q5_K_S",
        17 => "MOSTLY_Q5_K_M",
        18 => "MOSTLY_Q6_K",
        19 => "MOSTLY_IQ2_XXS",
        20 => "MOSTLY_IQ2_XS",
        21 => "MOSTLY_Q2_K_S",
        22 => "MOSTLY_IQ3_XS",
        23 => "MOSTLY_IQ3_XXS",
        24 => "MOSTLY_IQ1_S",
        25 => "MOSTLY_IQ4_NL",
        26 => "MOSTLY_IQ3_S",
        27 => "MOSTLY_IQ3_M",
        28 => "MOSTLY_IQ2_S",
        29 => "MOSTLY_IQ2_M",
        30 => "MOSTLY_IQ4_XS",
        31 => "MOSTLY_IQ1_M",
        32 => "MOSTLY_BF16",
        36 => "MOSTLY_TQ1_0",
        37 => "MOSTLY_TQ2_0",
        38 if dialects == Dialects::BitnetCpp => "MOSTLY_TL1 (bitnet.cpp)",
        39 if dialects == Dialects::BitnetCpp => "MOSTLY_TL2 (bitnet.cpp)",
        40 if dialects == Dialects::BitnetCpp => "MOSTLY_I2_S (bitnet.cpp)",
        38 => "MOSTLY_MXFP4_MOE",
        _ => return None,
    })
}

fn token_text(f: &GgufFile, id: u64) -> String {
    f.get_array("tokenizer.ggml.tokens")
        .and_then(|t| t.get(usize::try_from(id).ok()?))
        .and_then(MetadataValue::as_str)
        .map_or_else(String::new, |s| format!(" {s:?}"))
}

fn summary(f: &GgufFile, path: &std::path::Path, with_tensors: bool) -> String {
    let mut s = String::new();
    let arch = f.architecture();
    let dialects = Dialects::for_architecture(arch);
    let _ = writeln!(
        s,
        "file:          {} ({} bytes)",
        path.display(),
        f.as_bytes().len()
    );
    let _ = writeln!(
        s,
        "format:        GGUF v{}, alignment {}, data at offset {}, {} metadata keys, {} tensors",
        f.version(),
        f.alignment(),
        f.data_offset(),
        f.metadata().len(),
        f.tensors().len()
    );
    let _ = writeln!(s, "architecture:  {}", arch.unwrap_or("(none)"));
    if let Some(name) = f.get_str("general.name") {
        let _ = writeln!(s, "name:          {name}");
    }
    match f.get_u64("general.file_type") {
        Some(ft) => {
            let name = file_type_name(ft, dialects).unwrap_or("unknown");
            let _ = writeln!(s, "file type:     {ft} ({name})");
        }
        None => {
            let _ = writeln!(s, "file type:     (not set)");
        }
    }

    if let Some(arch) = arch {
        let prefix = format!("{arch}.");
        let hparams: Vec<_> = f
            .metadata()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        if !hparams.is_empty() {
            let _ = writeln!(s, "\nhyperparameters:");
            for (k, v) in hparams {
                let _ = writeln!(s, "  {:<40} {}", &k[prefix.len()..], short(v));
            }
        }
    }

    let _ = writeln!(s, "\ntokenizer:");
    let model = f.get_str("tokenizer.ggml.model");
    let _ = writeln!(s, "  model         {}", model.unwrap_or("(none)"));
    if let Some(pre) = f.get_str("tokenizer.ggml.pre") {
        let _ = writeln!(s, "  pre           {pre}");
    }
    let vocab = f.get_array("tokenizer.ggml.tokens").map_or(0, <[_]>::len);
    let _ = writeln!(s, "  vocab size    {vocab}");
    if let Some(merges) = f.get_array("tokenizer.ggml.merges") {
        let _ = writeln!(s, "  merges        {}", merges.len());
    }
    for (label, key) in [
        ("bos id", "tokenizer.ggml.bos_token_id"),
        ("eos id", "tokenizer.ggml.eos_token_id"),
        ("eot id", "tokenizer.ggml.eot_token_id"),
        ("unk id", "tokenizer.ggml.unknown_token_id"),
        ("pad id", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(id) = f.get_u64(key) {
            let _ = writeln!(s, "  {label:<13} {id}{}", token_text(f, id));
        }
    }
    for key in [
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_eos_token",
    ] {
        if let Some(b) = f.get_bool(key) {
            let _ = writeln!(s, "  {:<13} {b}", &key["tokenizer.ggml.".len()..]);
        }
    }
    match f.get_str("tokenizer.chat_template") {
        Some(t) => {
            let _ = writeln!(s, "  chat template present ({} bytes)", t.len());
        }
        None => {
            let _ = writeln!(s, "  chat template absent");
        }
    }

    let mut per_type: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    for t in f.tensors() {
        let e = per_type.entry(t.ggml_type.name()).or_default();
        e.0 += 1;
        e.1 += t.n_elements;
        e.2 += t.n_bytes;
    }
    let _ = writeln!(s, "\ntensors by type:");
    let (mut n, mut elems, mut bytes) = (0, 0, 0);
    for (ty, (count, e, b)) in &per_type {
        let _ = writeln!(
            s,
            "  {ty:<14} {count:>5} tensors {e:>14} elements {b:>14} bytes"
        );
        n += count;
        elems += e;
        bytes += b;
    }
    let _ = writeln!(
        s,
        "  {:<14} {n:>5} tensors {elems:>14} elements {bytes:>14} bytes",
        "total"
    );

    if with_tensors {
        let _ = writeln!(
            s,
            "\n{:<48} {:<12} {:<24} {:>12} {:>12}",
            "name", "type", "shape", "bytes", "offset"
        );
        for t in f.tensors() {
            let shape = format!("{:?}", t.dims);
            let _ = writeln!(
                s,
                "{:<48} {:<12} {:<24} {:>12} {:>12}",
                t.name,
                t.ggml_type.name(),
                shape,
                t.n_bytes,
                t.offset
            );
        }
    }
    s
}
