//! bitnet-convert: Hugging Face BitNet checkpoints (`BitNetForCausalLM`, safetensors) to GGUF.
//!
//! [`convert`] reads `config.json`, the weights (one `model.safetensors` or the shards of
//! `model.safetensors.index.json`, memory-mapped), and the tokenizer (`tokenizer.model` or
//! `tokenizer.json`, plus `tokenizer_config.json`), and writes a GGUF file laid out like the
//! files bitnet.cpp's tools make:
//!
//! - architecture `bitnet-b1.58` (ReLU² FFN) or llama.cpp's `bitnet` (SiLU FFN), with the keys
//!   of FORMATS.md §1;
//! - the linears (q/k/v/o, gate/up/down) as exact ternary tensors (latent floats ternarised by
//!   absmean, or transformers' packed uint8 layout unpacked), stored as I2_S, TQ2_0, TQ1_0, F16
//!   or F32 ([`OutputType`]); Q/K rows are not permuted (NEOX RoPE);
//! - `token_embd` (and an untied `output`) as F16, norms as F32.
//!
//! BERT checkpoints (`model_type: bert`) go to llama.cpp's `bert` encoder layout instead
//! ([`bert`]: float matrices as F32, F16 or Q8_0, the WordPiece vocabulary).
//!
//! Modules: `config` (HF config → hyper-parameters, refusing what GGUF cannot express),
//! `checkpoint` (safetensors over mmap), `weights` (linears → `TernaryTensor`), `output`
//! (ternary → storage type), `vocab` (tokenizer → metadata).

#![forbid(unsafe_code)]

pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod output;
pub mod vocab;
pub mod weights;

use std::io::IsTerminal;
use std::path::Path;

use bitnet_gguf::{GgmlType, GgufWriter, MetadataValue};
use bitnet_quant::quantize;

pub use checkpoint::Checkpoint;
pub use config::{Activation, ModelConfig, PackedScale};
pub use error::{ConvertError, Result};
pub use output::OutputType;

/// What to produce.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Storage type of the ternary linears.
    pub output_type: OutputType,
    /// `general.name`; default: the config's `_name_or_path` (last component), else the
    /// directory name.
    pub name: Option<String>,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSummary {
    pub architecture: &'static str,
    pub n_tensors: usize,
    pub n_bytes: u64,
}

/// One output tensor: its GGUF name and where it comes from.
enum Source {
    /// A float tensor stored as `ty` (`token_embd`, `output`: F16; norms: F32).
    Float {
        hf: String,
        shape: Vec<usize>,
        ty: GgmlType,
    },
    /// A BitLinear weight `[rows = out, cols = in]`, stored as the output type.
    Linear {
        hf: String,
        rows: usize,
        cols: usize,
    },
}

struct Planned {
    gguf: String,
    source: Source,
}

/// A dimension of the model, resolved against the config.
#[derive(Clone, Copy)]
enum Dim {
    Hidden,
    Ffn,
    Kv,
}

/// What a per-layer tensor is: a norm of some length, or a linear `[out, in]`.
#[derive(Clone, Copy)]
enum Kind {
    Norm(Dim),
    Linear(Dim, Dim),
}

/// Per-layer tensors, in bitnet.cpp's order: GGUF name under `blk.N.`, HF name under
/// `model.layers.N.`, kind.
const LAYER_TENSORS: [(&str, &str, Kind); 11] = [
    ("attn_norm", "input_layernorm", Kind::Norm(Dim::Hidden)),
    (
        "attn_q",
        "self_attn.q_proj",
        Kind::Linear(Dim::Hidden, Dim::Hidden),
    ),
    (
        "attn_k",
        "self_attn.k_proj",
        Kind::Linear(Dim::Kv, Dim::Hidden),
    ),
    (
        "attn_v",
        "self_attn.v_proj",
        Kind::Linear(Dim::Kv, Dim::Hidden),
    ),
    (
        "attn_output",
        "self_attn.o_proj",
        Kind::Linear(Dim::Hidden, Dim::Hidden),
    ),
    (
        "attn_sub_norm",
        "self_attn.attn_sub_norm",
        Kind::Norm(Dim::Hidden),
    ),
    (
        "ffn_norm",
        "post_attention_layernorm",
        Kind::Norm(Dim::Hidden),
    ),
    (
        "ffn_gate",
        "mlp.gate_proj",
        Kind::Linear(Dim::Ffn, Dim::Hidden),
    ),
    ("ffn_up", "mlp.up_proj", Kind::Linear(Dim::Ffn, Dim::Hidden)),
    (
        "ffn_down",
        "mlp.down_proj",
        Kind::Linear(Dim::Hidden, Dim::Ffn),
    ),
    ("ffn_sub_norm", "mlp.ffn_sub_norm", Kind::Norm(Dim::Ffn)),
];

/// The tensors of the GGUF file, in bitnet.cpp's order.
fn plan(cfg: &ModelConfig, ckpt: &Checkpoint) -> Result<Vec<Planned>> {
    let size = |d: Dim| match d {
        Dim::Hidden => cfg.hidden_size,
        Dim::Ffn => cfg.intermediate_size,
        Dim::Kv => cfg.kv_dim(),
    };
    let (h, v) = (cfg.hidden_size, cfg.vocab_size);
    let float = |gguf: &str, hf: &str, shape: Vec<usize>, ty| Planned {
        gguf: gguf.to_string(),
        source: Source::Float {
            hf: hf.to_string(),
            shape,
            ty,
        },
    };
    let mut out = vec![float(
        "token_embd.weight",
        "model.embed_tokens.weight",
        vec![v, h],
        GgmlType::F16,
    )];
    for l in 0..cfg.n_layers {
        for (gguf, hf, kind) in LAYER_TENSORS {
            let gguf = format!("blk.{l}.{gguf}.weight");
            let hf = format!("model.layers.{l}.{hf}.weight");
            out.push(match kind {
                Kind::Norm(d) => float(&gguf, &hf, vec![size(d)], GgmlType::F32),
                Kind::Linear(rows, cols) => Planned {
                    gguf,
                    source: Source::Linear {
                        hf,
                        rows: size(rows),
                        cols: size(cols),
                    },
                },
            });
        }
    }
    out.push(float(
        "output_norm.weight",
        "model.norm.weight",
        vec![h],
        GgmlType::F32,
    ));
    if !cfg.tied_embeddings {
        if !ckpt.contains("lm_head.weight") {
            return Err(ConvertError::Unsupported(
                "tie_word_embeddings is false but the checkpoint has no lm_head.weight".into(),
            ));
        }
        out.push(float(
            "output.weight",
            "lm_head.weight",
            vec![v, h],
            GgmlType::F16,
        ));
    }
    check_all_used(&out, ckpt, cfg)?;
    Ok(out)
}

/// Refuses checkpoints with tensors the architecture has no place for (biases, extra norms...):
/// dropping them silently would give a different model.
fn check_all_used(planned: &[Planned], ckpt: &Checkpoint, cfg: &ModelConfig) -> Result<()> {
    let mut used = std::collections::HashSet::new();
    for p in planned {
        match &p.source {
            Source::Float { hf, .. } => {
                used.insert(hf.clone());
            }
            Source::Linear { hf, .. } => {
                used.insert(format!("{hf}_scale"));
                used.insert(hf.clone());
            }
        }
    }
    let ignorable = |name: &str| {
        name.ends_with("rotary_emb.inv_freq") || (cfg.tied_embeddings && name == "lm_head.weight")
    };
    match ckpt
        .names()
        .into_iter()
        .find(|n| !used.contains(*n) && !ignorable(n))
    {
        Some(extra) => Err(ConvertError::Unsupported(format!(
            "tensor {extra} has no place in the BitNet GGUF architecture"
        ))),
        None => Ok(()),
    }
}

/// The model keys (`general.*`, `<arch>.*`) in the order of the reference files.
fn model_metadata(cfg: &ModelConfig, name: &str, ty: OutputType) -> Vec<(String, MetadataValue)> {
    use MetadataValue as M;
    let arch = cfg.activation.architecture();
    let u32_of = |n: usize| M::U32(u32::try_from(n).unwrap_or(u32::MAX));
    let mut kv = vec![
        ("general.architecture".to_string(), M::String(arch.into())),
        ("general.type".to_string(), M::String("model".into())),
        ("general.name".to_string(), M::String(name.into())),
    ];
    let arch_keys = [
        ("context_length", u32_of(cfg.context_length)),
        ("embedding_length", u32_of(cfg.hidden_size)),
        ("block_count", u32_of(cfg.n_layers)),
        ("feed_forward_length", u32_of(cfg.intermediate_size)),
        ("attention.head_count", u32_of(cfg.n_heads)),
        ("attention.head_count_kv", u32_of(cfg.n_kv_heads)),
        ("attention.layer_norm_rms_epsilon", M::F32(cfg.rms_norm_eps)),
        ("rope.freq_base", M::F32(cfg.rope_theta)),
        ("rope.dimension_count", u32_of(cfg.head_dim)),
        ("vocab_size", u32_of(cfg.vocab_size)),
    ];
    kv.extend(
        arch_keys
            .into_iter()
            .map(|(k, v)| (format!("{arch}.{k}"), v)),
    );
    kv.push(("general.file_type".into(), M::U32(ty.file_type())));
    kv.push(("general.quantization_version".into(), M::U32(2)));
    kv
}

/// The `general.name` default: `_name_or_path`'s last component, else the directory name.
fn default_name(cfg: &ModelConfig, dir: &Path) -> String {
    cfg.name_or_path
        .as_deref()
        .and_then(|p| p.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            dir.canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "bitnet".to_string())
}

/// Converts the checkpoint in `hf_dir` to a GGUF file at `out`.
pub fn convert(hf_dir: &Path, out: &Path, opts: &ConvertOptions) -> Result<ConvertSummary> {
    let json = config::read_json(&hf_dir.join("config.json"))?;
    if bert::is_bert(&json) {
        return bert::convert_bert(hf_dir, &json, out, opts);
    }
    let cfg = ModelConfig::from_dir(hf_dir)?;
    let ckpt = Checkpoint::open(hf_dir)?;
    let spec = vocab::load_vocab(hf_dir, &cfg)?;
    let planned = plan(&cfg, &ckpt)?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| default_name(&cfg, hf_dir));

    let mut writer = GgufWriter::new();
    for (k, v) in model_metadata(&cfg, &name, opts.output_type) {
        writer.add_metadata(k, v);
    }
    for (k, v) in vocab::vocab_metadata(&spec, cfg.vocab_size) {
        writer.add_metadata(k, v);
    }

    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(planned.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    for p in &planned {
        bar.set_message(p.gguf.clone());
        let (dims, ty, bytes) = convert_tensor(&ckpt, &cfg, &p.source, opts.output_type, &p.gguf)?;
        writer.add_tensor(p.gguf.clone(), &dims, ty, bytes);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let n_bytes = writer
        .write_file(out)
        .map_err(|error| ConvertError::Write {
            path: out.to_path_buf(),
            error,
        })?;
    Ok(ConvertSummary {
        architecture: cfg.activation.architecture(),
        n_tensors: planned.len(),
        n_bytes,
    })
}

/// One tensor's GGUF dims (ne0 first), type and bytes.
fn convert_tensor(
    ckpt: &Checkpoint,
    cfg: &ModelConfig,
    source: &Source,
    output_type: OutputType,
    gguf_name: &str,
) -> Result<(Vec<u64>, GgmlType, Vec<u8>)> {
    let quant_err = |error| ConvertError::Quant {
        name: gguf_name.to_string(),
        error,
    };
    match source {
        Source::Float { hf, shape, ty } => {
            let t = ckpt.tensor(hf)?;
            t.expect_shape(shape)?;
            let bytes = quantize(*ty, &t.to_f32()?).map_err(quant_err)?;
            let dims = shape.iter().rev().map(|&d| d as u64).collect();
            Ok((dims, *ty, bytes))
        }
        Source::Linear { hf, rows, cols } => {
            let weight = weights::ternary_weight(ckpt, hf, *rows, *cols, cfg.packed_scale)?;
            let bytes = output::encode_linear(weight, output_type).map_err(quant_err)?;
            Ok((
                vec![*cols as u64, *rows as u64],
                output_type.ggml_type(),
                bytes,
            ))
        }
    }
}
