//! The Hugging Face `config.json` of a BitNet checkpoint (`BitNetForCausalLM`, `model_type`
//! `bitnet`), checked for what the GGUF architectures can express, and turned into the model
//! hyper-parameters the GGUF metadata records. Anything the converter cannot represent faithfully
//! (rope scaling, biases, other activations, a head size that is not hidden / heads) is refused
//! with a message naming it.

use std::path::Path;

use serde_json::Value;

use crate::error::{ConvertError, Result};

/// The FFN activation, which decides the GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `relu2` (ReLU², BitNet b1.58 2B-4T): architecture `bitnet-b1.58`.
    Relu2,
    /// `silu` (1bitLLM-style models): llama.cpp's architecture `bitnet`.
    Silu,
}

impl Activation {
    /// The GGUF `general.architecture` written for this activation.
    pub fn architecture(self) -> &'static str {
        match self {
            Activation::Relu2 => "bitnet-b1.58",
            Activation::Silu => "bitnet",
        }
    }
}

/// How packed ("offline") linear weights relate to their stored `weight_scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedScale {
    /// transformers' `BitLinear` (the default `linear_class`): the output is divided by
    /// `weight_scale`, so the weight is `t / weight_scale`.
    Divide,
    /// transformers' `AutoBitLinear` offline mode: the output is multiplied by `weight_scale`.
    Multiply,
}

/// The hyper-parameters of a BitNet model, as GGUF records them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub activation: Activation,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    /// Whether the LM head is the token embedding (no `output.weight`).
    pub tied_embeddings: bool,
    /// What packed weights' `weight_scale` means (only used for uint8 weights).
    pub packed_scale: PackedScale,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// `_name_or_path`, if the config records it.
    pub name_or_path: Option<String>,
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|error| ConvertError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn bad(msg: impl Into<String>) -> ConvertError {
    ConvertError::BadConfig(msg.into())
}

fn unsupported(msg: impl Into<String>) -> ConvertError {
    ConvertError::Unsupported(msg.into())
}

fn uint(cfg: &Value, key: &str) -> Result<Option<usize>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(format!("{key} must be a non-negative integer, got {v}"))),
    }
}

fn required_uint(cfg: &Value, key: &str) -> Result<usize> {
    match uint(cfg, key)? {
        Some(0) => Err(bad(format!("{key} is 0"))),
        Some(n) => Ok(n),
        None => Err(bad(format!("{key} is missing"))),
    }
}

fn float(cfg: &Value, key: &str) -> Result<Option<f64>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(format!("{key} must be a number, got {v}"))),
    }
}

/// A token id key that may be an integer or a list of integers (the first is taken).
fn token_id(cfg: &Value, key: &str) -> Result<Option<u32>> {
    let v = match cfg.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => match items.first() {
            None => return Ok(None),
            Some(first) => first,
        },
        Some(v) => v,
    };
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| bad(format!("{key} must be a token id, got {v}")))
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<ModelConfig> {
        Self::from_json(&read_json(&dir.join("config.json"))?)
    }

    /// Parses and checks a config. Refuses anything that is not a BitNet causal LM this
    /// converter can represent exactly.
    pub fn from_json(cfg: &Value) -> Result<ModelConfig> {
        let model_type = cfg.get("model_type").and_then(Value::as_str);
        let archs: Vec<&str> = cfg
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let is_bitnet_arch = archs
            .iter()
            .any(|a| a.eq_ignore_ascii_case("BitNetForCausalLM"));
        if model_type != Some("bitnet") && !is_bitnet_arch {
            return Err(unsupported(format!(
                "model_type {model_type:?}, architectures {archs:?}: only BitNetForCausalLM (model_type \"bitnet\") checkpoints are supported"
            )));
        }

        let activation = match cfg.get("hidden_act").and_then(Value::as_str) {
            // transformers' BitNetConfig default.
            None | Some("relu2") => Activation::Relu2,
            Some("silu") => Activation::Silu,
            Some(other) => {
                return Err(unsupported(format!(
                    "hidden_act {other:?} (only \"relu2\" and \"silu\" are supported)"
                )))
            }
        };

        let hidden_size = required_uint(cfg, "hidden_size")?;
        let n_heads = required_uint(cfg, "num_attention_heads")?;
        let n_kv_heads = uint(cfg, "num_key_value_heads")?.unwrap_or(n_heads);
        if n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
            return Err(unsupported(format!(
                "{n_heads} attention heads cannot be grouped over {n_kv_heads} key/value heads"
            )));
        }
        if !hidden_size.is_multiple_of(n_heads) {
            return Err(unsupported(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {n_heads}"
            )));
        }
        let head_dim = hidden_size / n_heads;
        if let Some(explicit) = uint(cfg, "head_dim")? {
            if explicit != head_dim {
                return Err(unsupported(format!(
                    "head_dim {explicit} differs from hidden_size / num_attention_heads = {head_dim}"
                )));
            }
        }

        if cfg.get("attention_bias").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported(
                "attention_bias = true (BitNet GGUFs have no biases)",
            ));
        }
        if cfg.get("mlp_bias").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported("mlp_bias = true (BitNet GGUFs have no biases)"));
        }
        if matches!(cfg.get("rope_scaling"), Some(v) if !v.is_null()) {
            return Err(unsupported(format!(
                "rope_scaling {} (only plain RoPE is supported)",
                cfg["rope_scaling"]
            )));
        }
        let mut rope_theta = float(cfg, "rope_theta")?;
        if let Some(params) = cfg.get("rope_parameters").filter(|v| !v.is_null()) {
            let rope_type = params.get("rope_type").and_then(Value::as_str);
            if !matches!(rope_type, None | Some("default")) {
                return Err(unsupported(format!(
                    "rope_parameters.rope_type {rope_type:?} (only plain RoPE is supported)"
                )));
            }
            if let Some(theta) = float(params, "rope_theta")? {
                if rope_theta.is_some_and(|t| t != theta) {
                    return Err(bad(format!(
                        "rope_theta {} and rope_parameters.rope_theta {theta} disagree",
                        rope_theta.unwrap_or_default()
                    )));
                }
                rope_theta = Some(theta);
            }
        }
        let rope_theta = rope_theta.ok_or_else(|| bad("rope_theta is missing"))?;

        let packed_scale = packed_scale(cfg)?;
        let rms_norm_eps =
            float(cfg, "rms_norm_eps")?.ok_or_else(|| bad("rms_norm_eps is missing"))?;

        Ok(ModelConfig {
            activation,
            vocab_size: required_uint(cfg, "vocab_size")?,
            hidden_size,
            intermediate_size: required_uint(cfg, "intermediate_size")?,
            n_layers: required_uint(cfg, "num_hidden_layers")?,
            n_heads,
            n_kv_heads,
            head_dim,
            context_length: required_uint(cfg, "max_position_embeddings")?,
            rms_norm_eps: rms_norm_eps as f32,
            rope_theta: rope_theta as f32,
            // transformers' BitNetConfig defaults to untied; the converter then needs lm_head.
            tied_embeddings: cfg
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            packed_scale,
            bos_token_id: token_id(cfg, "bos_token_id")?,
            eos_token_id: token_id(cfg, "eos_token_id")?,
            pad_token_id: token_id(cfg, "pad_token_id")?,
            name_or_path: cfg
                .get("_name_or_path")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// Rows of the K and V projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// Reads `quantization_config` (absent: latent weights; `bitnet`: packed or online).
fn packed_scale(cfg: &Value) -> Result<PackedScale> {
    let Some(q) = cfg.get("quantization_config").filter(|v| !v.is_null()) else {
        return Ok(PackedScale::Divide);
    };
    let method = q.get("quant_method").and_then(Value::as_str);
    if method != Some("bitnet") {
        return Err(unsupported(format!(
            "quantization_config.quant_method {method:?} (only \"bitnet\" is supported)"
        )));
    }
    let linear_class = q.get("linear_class").and_then(Value::as_str);
    let mode = q.get("quantization_mode").and_then(Value::as_str);
    Ok(match (linear_class, mode) {
        (Some("autobitlinear"), None | Some("offline")) => PackedScale::Multiply,
        (Some("autobitlinear"), Some("online")) | (None | Some("bitlinear"), _) => {
            PackedScale::Divide
        }
        (Some(other), _) => {
            return Err(unsupported(format!(
            "quantization_config.linear_class {other:?} (known: \"bitlinear\", \"autobitlinear\")"
        )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tiny() -> Value {
        json!({
            "architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
            "vocab_size": 512, "hidden_size": 256, "intermediate_size": 768,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "hidden_act": "relu2", "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "tie_word_embeddings": true
        })
    }

    fn refusal(edit: impl FnOnce(&mut Value)) -> String {
        let mut cfg = tiny();
        edit(&mut cfg);
        ModelConfig::from_json(&cfg).unwrap_err().to_string()
    }

    #[test]
    fn unsupported_configs_are_refused_by_name() {
        assert!(refusal(|c| c["hidden_act"] = json!("gelu")).contains("hidden_act \"gelu\""));
        assert!(
            refusal(|c| c["rope_scaling"] = json!({"type": "linear", "factor": 2.0}))
                .contains("rope_scaling")
        );
        assert!(
            refusal(|c| c["rope_parameters"] = json!({"rope_type": "yarn"})).contains("rope_type")
        );
        assert!(refusal(|c| c["attention_bias"] = json!(true)).contains("attention_bias"));
        assert!(refusal(|c| c["head_dim"] = json!(32)).contains("head_dim 32"));
        assert!(refusal(|c| c["num_key_value_heads"] = json!(3)).contains("key/value heads"));
        assert!(refusal(|c| {
            c["model_type"] = json!("llama");
            c["architectures"] = json!(["LlamaForCausalLM"]);
        })
        .contains("only BitNetForCausalLM"));
        assert!(refusal(|c| {
            c.as_object_mut().unwrap().remove("rms_norm_eps");
        })
        .contains("rms_norm_eps is missing"));
        assert!(
            refusal(|c| c["quantization_config"] = json!({"quant_method": "gptq"}))
                .contains("gptq")
        );
    }

    #[test]
    fn tiny_config_reads_as_documented() {
        let cfg = ModelConfig::from_json(&tiny()).unwrap();
        assert_eq!(cfg.activation, Activation::Relu2);
        assert_eq!((cfg.head_dim, cfg.kv_dim()), (64, 128));
        assert_eq!(cfg.rms_norm_eps, 1e-5f32);
        assert!(cfg.tied_embeddings);
    }
}
