//! Hugging Face BERT checkpoints (`BertModel`, `model_type: bert`, e.g. sentence-transformers
//! models) to a GGUF file of llama.cpp's `bert` architecture: its tensor names
//! (`token_embd`, `position_embd`, `token_types`, `token_embd_norm`, `blk.N.attn_{q,k,v,output}`,
//! `attn_output_norm`, `ffn_up`, `ffn_down`, `layer_output_norm`, each with its bias), its keys
//! (`bert.attention.causal = false`, `bert.pooling_type`), and the WordPiece vocabulary in its
//! phantom-space form (`▁word` for a word start, `ing` for HF's `##ing`).
//!
//! The matrices (linears, token and position embeddings) are stored as F32, F16 or Q8_0; norms,
//! biases and the token-type table as F32. The pooling comes from sentence-transformers'
//! `1_Pooling/config.json` when the folder has one (mean, cls or last token), else `cls`.
//! The MLM head (`cls.*`) and the `pooler` are not part of the encoder and are skipped; any other
//! tensor without a place is refused.
//!
//! A cross-encoder (`BertForSequenceClassification`: a reranker) keeps its head, in F32, under
//! llama.cpp's names: the pooler (`bert.pooler.dense`, dense + tanh over `[CLS]`) becomes
//! `cls.weight` / `cls.bias` and the `classifier` becomes `cls.output.weight` /
//! `cls.output.bias`; its `pooling_type` is 4 (rank).

use std::path::Path;

use bitnet_gguf::{GgmlType, GgufWriter, MetadataValue};
use bitnet_quant::quantize;
use bitnet_tokenizer::{TokenType, VocabSpec};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::config::read_json;
use crate::{ConvertError, ConvertOptions, ConvertSummary, OutputType, Result};

const ARCH: &str = "bert";

/// Whether `config.json` describes a BERT encoder.
pub fn is_bert(cfg: &Value) -> bool {
    cfg.get("model_type").and_then(Value::as_str) == Some("bert")
}

/// The hyper-parameters read from `config.json`.
struct BertConfig {
    vocab_size: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    positions: usize,
    type_vocab: usize,
    eps: f32,
}

fn uint(cfg: &Value, key: &str) -> Result<usize> {
    match cfg.get(key).and_then(Value::as_u64) {
        Some(n) if n > 0 => Ok(n as usize),
        _ => Err(ConvertError::BadConfig(format!(
            "{key} is missing or not a positive integer"
        ))),
    }
}

impl BertConfig {
    fn from_json(cfg: &Value) -> Result<Self> {
        let act = cfg
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu");
        if act != "gelu" {
            return Err(ConvertError::Unsupported(format!(
                "BERT hidden_act {act:?} (only \"gelu\", the erf form, is implemented)"
            )));
        }
        if let Some(p) = cfg.get("position_embedding_type").and_then(Value::as_str) {
            if p != "absolute" {
                return Err(ConvertError::Unsupported(format!(
                    "BERT position_embedding_type {p:?} (only \"absolute\")"
                )));
            }
        }
        let c = BertConfig {
            vocab_size: uint(cfg, "vocab_size")?,
            hidden: uint(cfg, "hidden_size")?,
            layers: uint(cfg, "num_hidden_layers")?,
            heads: uint(cfg, "num_attention_heads")?,
            ffn: uint(cfg, "intermediate_size")?,
            positions: uint(cfg, "max_position_embeddings")?,
            type_vocab: cfg
                .get("type_vocab_size")
                .and_then(Value::as_u64)
                .unwrap_or(2) as usize,
            eps: cfg
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12) as f32,
        };
        if !c.hidden.is_multiple_of(c.heads) {
            return Err(ConvertError::BadConfig(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden, c.heads
            )));
        }
        Ok(c)
    }
}

/// Where a GGUF tensor comes from and how it is stored.
struct Planned {
    gguf: String,
    hf: String,
    shape: Vec<usize>,
    ty: GgmlType,
}

/// The checkpoint's name of `name`, with or without the `bert.` prefix of task models.
fn hf_name(ckpt: &Checkpoint, name: &str) -> String {
    let prefixed = format!("bert.{name}");
    if !ckpt.contains(name) && ckpt.contains(&prefixed) {
        prefixed
    } else {
        name.to_string()
    }
}

/// Whether the checkpoint is a cross-encoder: a classification head on the pooler.
fn is_classifier(cfg: &Value, ckpt: &Checkpoint) -> bool {
    let declared = cfg["architectures"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "BertForSequenceClassification"));
    declared || ckpt.contains("classifier.weight")
}

fn plan(
    c: &BertConfig,
    ckpt: &Checkpoint,
    matrix: GgmlType,
    labels: Option<usize>,
) -> Result<Vec<Planned>> {
    let f32 = GgmlType::F32;
    let mut out = Vec::new();
    let mut put = |gguf: String, hf: &str, shape: Vec<usize>, ty: GgmlType| {
        out.push(Planned {
            gguf,
            hf: hf_name(ckpt, hf),
            shape,
            ty,
        })
    };
    let (h, ff) = (c.hidden, c.ffn);
    put(
        "token_embd.weight".into(),
        "embeddings.word_embeddings.weight",
        vec![c.vocab_size, h],
        matrix,
    );
    put(
        "position_embd.weight".into(),
        "embeddings.position_embeddings.weight",
        vec![c.positions, h],
        matrix,
    );
    put(
        "token_types.weight".into(),
        "embeddings.token_type_embeddings.weight",
        vec![c.type_vocab, h],
        f32,
    );
    for part in ["weight", "bias"] {
        put(
            format!("token_embd_norm.{part}"),
            &format!("embeddings.LayerNorm.{part}"),
            vec![h],
            f32,
        );
    }
    for l in 0..c.layers {
        let layer = [
            ("attn_q", "attention.self.query", vec![h, h]),
            ("attn_k", "attention.self.key", vec![h, h]),
            ("attn_v", "attention.self.value", vec![h, h]),
            ("attn_output", "attention.output.dense", vec![h, h]),
            ("attn_output_norm", "attention.output.LayerNorm", vec![h]),
            ("ffn_up", "intermediate.dense", vec![ff, h]),
            ("ffn_down", "output.dense", vec![h, ff]),
            ("layer_output_norm", "output.LayerNorm", vec![h]),
        ];
        for (gguf, hf, shape) in layer {
            let rows = shape[0];
            let ty = if shape.len() == 2 { matrix } else { f32 };
            put(
                format!("blk.{l}.{gguf}.weight"),
                &format!("encoder.layer.{l}.{hf}.weight"),
                shape,
                ty,
            );
            put(
                format!("blk.{l}.{gguf}.bias"),
                &format!("encoder.layer.{l}.{hf}.bias"),
                vec![rows],
                f32,
            );
        }
    }
    if let Some(labels) = labels {
        for part in ["weight", "bias"] {
            let shape = if part == "weight" {
                vec![h, h]
            } else {
                vec![h]
            };
            put(
                format!("cls.{part}"),
                &format!("pooler.dense.{part}"),
                shape,
                f32,
            );
            let shape = if part == "weight" {
                vec![labels, h]
            } else {
                vec![labels]
            };
            put(
                format!("cls.output.{part}"),
                &format!("classifier.{part}"),
                shape,
                f32,
            );
        }
    }
    let used: std::collections::HashSet<&str> = out.iter().map(|p| p.hf.as_str()).collect();
    let skipped = |n: &str| {
        let n = n.strip_prefix("bert.").unwrap_or(n);
        n.starts_with("pooler.") || n.starts_with("cls.") || n == "embeddings.position_ids"
    };
    if let Some(extra) = ckpt
        .names()
        .into_iter()
        .find(|n| !used.contains(n) && !skipped(n))
    {
        return Err(ConvertError::Unsupported(format!(
            "tensor {extra} has no place in the GGUF `bert` architecture"
        )));
    }
    Ok(out)
}

/// The pooling of sentence-transformers' `1_Pooling/config.json` (llama.cpp's
/// `pooling_type` values: 1 mean, 2 cls, 3 last), `cls` without one.
fn pooling_type(dir: &Path) -> Result<u32> {
    let path = dir.join("1_Pooling/config.json");
    if !path.is_file() {
        return Ok(2);
    }
    let cfg = read_json(&path)?;
    let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modes = [
        ("pooling_mode_mean_tokens", 1),
        ("pooling_mode_cls_token", 2),
        ("pooling_mode_lasttoken", 3),
    ];
    let chosen: Vec<u32> = modes
        .iter()
        .filter(|(k, _)| on(k))
        .map(|&(_, v)| v)
        .collect();
    let other = [
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
    ]
    .iter()
    .find(|k| on(k));
    match (chosen.as_slice(), other) {
        ([one], None) => Ok(*one),
        _ => Err(ConvertError::Unsupported(format!(
            "{}: only one of mean, cls or last-token pooling is implemented",
            path.display()
        ))),
    }
}

/// The WordPiece vocabulary: `tokenizer.json` (model `WordPiece`) if present, else `vocab.txt`;
/// lower-casing and accent stripping from the normalizer (or `tokenizer_config.json`'s
/// `do_lower_case`).
fn wordpiece_vocab(dir: &Path) -> Result<VocabSpec> {
    let tok_err = |m: String| ConvertError::Tokenizer(m);
    let json_path = dir.join("tokenizer.json");
    let (words, lowercase, strip_accents) = if json_path.is_file() {
        let tj = read_json(&json_path)?;
        let model = &tj["model"];
        if model["type"].as_str() != Some("WordPiece") {
            return Err(tok_err(format!(
                "{}: model type {} (a BERT checkpoint needs WordPiece)",
                json_path.display(),
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| tok_err(format!("{}: no model.vocab", json_path.display())))?;
        let mut words = vec![None; vocab.len()];
        for (text, id) in vocab {
            let id = id.as_u64().map(|i| i as usize).filter(|&i| i < words.len());
            let Some(id) = id else {
                return Err(tok_err(format!(
                    "{}: vocabulary ids are not 0..{}",
                    json_path.display(),
                    words.len()
                )));
            };
            words[id] = Some(text.clone());
        }
        let words: Option<Vec<String>> = words.into_iter().collect();
        let words = words
            .ok_or_else(|| tok_err(format!("{}: vocabulary ids have gaps", json_path.display())))?;
        let norm = &tj["normalizer"];
        let lowercase = norm["lowercase"].as_bool().unwrap_or(true);
        let strip = norm["strip_accents"].as_bool().unwrap_or(lowercase);
        (words, lowercase, strip)
    } else {
        let path = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&path).map_err(|error| ConvertError::Io {
            path: path.clone(),
            error,
        })?;
        let config = dir.join("tokenizer_config.json");
        let tc = if config.is_file() {
            read_json(&config)?
        } else {
            Value::Null
        };
        let lowercase = tc["do_lower_case"].as_bool().unwrap_or(true);
        let strip = tc["strip_accents"].as_bool().unwrap_or(lowercase);
        (text.lines().map(str::to_string).collect(), lowercase, strip)
    };
    let bracketed = |w: &str| w.len() > 2 && w.starts_with('[') && w.ends_with(']');
    let mut tokens = Vec::with_capacity(words.len());
    let mut types = Vec::with_capacity(words.len());
    for w in &words {
        if bracketed(w) {
            tokens.push(w.clone());
            types.push(TokenType::Control);
        } else {
            tokens.push(match w.strip_prefix("##") {
                Some(rest) => rest.to_string(),
                None => format!("\u{2581}{w}"),
            });
            types.push(TokenType::Normal);
        }
    }
    let find = |t: &str| {
        words
            .iter()
            .position(|w| w == t)
            .map(|i| i as u32)
            .ok_or_else(|| tok_err(format!("the vocabulary has no {t} token")))
    };
    Ok(VocabSpec {
        model: "bert".into(),
        tokens,
        token_types: types,
        unk: Some(find("[UNK]")?),
        cls: Some(find("[CLS]")?),
        sep: Some(find("[SEP]")?),
        pad: find("[PAD]").ok(),
        lowercase: Some(lowercase),
        strip_accents: Some(strip_accents),
        ..VocabSpec::default()
    })
}

/// Converts the BERT checkpoint in `dir` (its parsed `config.json` is `cfg`).
pub(crate) fn convert_bert(
    dir: &Path,
    cfg: &Value,
    out: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertSummary> {
    let matrix = match opts.output_type {
        OutputType::F32 => GgmlType::F32,
        OutputType::F16 => GgmlType::F16,
        OutputType::Q8_0 => GgmlType::Q8_0,
        other => {
            return Err(ConvertError::Unsupported(format!(
                "BERT weights are not ternary: --type {other} does not apply (f32, f16 or q8_0)"
            )))
        }
    };
    let c = BertConfig::from_json(cfg)?;
    let ckpt = Checkpoint::open(dir)?;
    let labels = if is_classifier(cfg, &ckpt) {
        let t = ckpt.tensor("classifier.weight")?;
        match t.shape {
            [labels, h] if *h == c.hidden && *labels > 0 => Some(*labels),
            other => {
                return Err(ConvertError::BadConfig(format!(
                    "classifier.weight has shape {other:?}; a BERT classification head is \
                     [num_labels, {}]",
                    c.hidden
                )))
            }
        }
    } else {
        None
    };
    let planned = plan(&c, &ckpt, matrix, labels)?;
    let pooling = match labels {
        Some(_) => 4,
        None => pooling_type(dir)?,
    };
    let spec = wordpiece_vocab(dir)?;
    if spec.tokens.len() > c.vocab_size {
        return Err(ConvertError::Tokenizer(format!(
            "{} tokens but vocab_size {}",
            spec.tokens.len(),
            c.vocab_size
        )));
    }
    let name = opts.name.clone().unwrap_or_else(|| {
        cfg.get("_name_or_path")
            .and_then(Value::as_str)
            .and_then(|p| p.trim_end_matches('/').rsplit('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("bert")
            .to_string()
    });
    use MetadataValue as M;
    let u32_of = |n: usize| M::U32(u32::try_from(n).unwrap_or(u32::MAX));
    let mut writer = GgufWriter::new();
    writer.add_metadata("general.architecture", M::String(ARCH.into()));
    writer.add_metadata("general.type", M::String("model".into()));
    writer.add_metadata("general.name", M::String(name));
    for (k, v) in [
        ("context_length", u32_of(c.positions)),
        ("embedding_length", u32_of(c.hidden)),
        ("block_count", u32_of(c.layers)),
        ("feed_forward_length", u32_of(c.ffn)),
        ("attention.head_count", u32_of(c.heads)),
        ("attention.layer_norm_epsilon", M::F32(c.eps)),
        ("attention.causal", M::Bool(false)),
        ("pooling_type", M::U32(pooling)),
    ] {
        writer.add_metadata(format!("{ARCH}.{k}"), v);
    }
    writer.add_metadata("general.file_type", M::U32(opts.output_type.file_type()));
    writer.add_metadata("general.quantization_version", M::U32(2));
    for (k, v) in crate::vocab::vocab_metadata(&spec, c.vocab_size) {
        writer.add_metadata(k, v);
    }
    for p in &planned {
        let t = ckpt.tensor(&p.hf)?;
        t.expect_shape(&p.shape)?;
        let bytes = quantize(p.ty, &t.to_f32()?).map_err(|error| ConvertError::Quant {
            name: p.gguf.clone(),
            error,
        })?;
        let dims: Vec<u64> = p.shape.iter().rev().map(|&d| d as u64).collect();
        writer.add_tensor(p.gguf.clone(), &dims, p.ty, bytes);
    }
    let n_bytes = writer
        .write_file(out)
        .map_err(|error| ConvertError::Write {
            path: out.to_path_buf(),
            error,
        })?;
    Ok(ConvertSummary {
        architecture: ARCH,
        n_tensors: planned.len(),
        n_bytes,
    })
}
