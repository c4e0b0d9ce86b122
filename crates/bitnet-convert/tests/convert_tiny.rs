//! Converting the tiny BitNet b1.58 checkpoint (`testdata/oracle/tiny-b158/hf`) and comparing the
//! result with the reference GGUFs made by others: `tiny-b158-i2_s.gguf` (bitnet.cpp's own
//! quantizer), `tiny-b158-tq2_0/tq1_0.gguf` (gguf-py's `gguf.quants.quantize`, byte-identical to
//! bitnet.cpp's) and `tiny-b158-f32.gguf` (gguf-py's writer). Also the packed ("offline") HF
//! layout of the same model, made by `tools/make_packed_checkpoint.py`.

use std::path::{Path, PathBuf};

use bitnet_convert::{convert, ConvertOptions, OutputType};
use bitnet_gguf::{GgmlType, GgufFile};
use bitnet_quant::{decode_ternary, TernaryScales};

fn oracle_gguf(name: &str) -> GgufFile {
    GgufFile::open(bitnet_testdata::oracle(&format!("tiny-b158/gguf/{name}"))).unwrap()
}

fn latent_dir() -> PathBuf {
    bitnet_testdata::oracle("tiny-b158/hf")
}

fn packed_dir() -> PathBuf {
    bitnet_testdata::cached("tiny-b158-packed/model.safetensors.index.json")
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Converts `dir` to `ty` in a fresh temporary directory; returns the file (and keeps the
/// directory alive).
fn convert_to(dir: &Path, ty: OutputType) -> (tempfile::TempDir, GgufFile, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(format!("out-{ty}.gguf"));
    let opts = ConvertOptions {
        output_type: ty,
        name: Some("tiny-b158".into()),
        progress: false,
    };
    let summary = convert(dir, &out, &opts).unwrap();
    assert_eq!(summary.architecture, "bitnet-b1.58");
    assert_eq!(summary.n_tensors, 24);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(summary.n_bytes, bytes.len() as u64);
    (tmp, GgufFile::open(&out).unwrap(), bytes)
}

/// Every key, in order, with the same type and value.
fn assert_same_metadata(ours: &GgufFile, reference: &GgufFile) {
    let keys = |f: &GgufFile| {
        f.metadata()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(ours), keys(reference));
    for (key, value) in reference.metadata() {
        assert_eq!(ours.get(key), Some(value), "metadata {key}");
    }
}

fn assert_same_tensor_table(ours: &GgufFile, reference: &GgufFile) {
    let table = |f: &GgufFile| {
        f.tensors()
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone(), t.ggml_type))
            .collect::<Vec<_>>()
    };
    assert_eq!(table(ours), table(reference));
}

#[test]
fn latent_to_i2s_matches_bitnet_cpp_quantizer() {
    let (_tmp, ours, _) = convert_to(&latent_dir(), OutputType::I2S);
    let reference = oracle_gguf("tiny-b158-i2_s.gguf");
    assert_same_metadata(&ours, &reference);
    assert_same_tensor_table(&ours, &reference);
    let mut n_ternary = 0;
    for t in reference.tensors() {
        let mine = ours.tensor(&t.name).unwrap();
        let (a, b) = (ours.tensor_data(mine), reference.tensor_data(t));
        if t.ggml_type == GgmlType::I2S {
            // Codes and scale; the 28 padding bytes are uninitialised in bitnet.cpp's file.
            let n = t.n_elements as usize;
            assert_eq!(a[..n / 4], b[..n / 4], "{}: codes", t.name);
            assert_eq!(
                a[n / 4..n / 4 + 4],
                b[n / 4..n / 4 + 4],
                "{}: scale",
                t.name
            );
            let (x, y) = (
                decode_ternary(GgmlType::I2S, a, &t.dims).unwrap(),
                decode_ternary(GgmlType::I2S, b, &t.dims).unwrap(),
            );
            assert_eq!(x, y, "{}", t.name);
            n_ternary += 1;
        } else {
            assert_eq!(a, b, "{}", t.name);
        }
    }
    assert_eq!(n_ternary, 14);
}

#[test]
fn latent_to_f32_is_byte_identical_to_the_reference_file() {
    let (_tmp, ours, bytes) = convert_to(&latent_dir(), OutputType::F32);
    let reference = oracle_gguf("tiny-b158-f32.gguf");
    assert_same_metadata(&ours, &reference);
    assert_same_tensor_table(&ours, &reference);
    for t in reference.tensors() {
        let mine = ours.tensor(&t.name).unwrap();
        assert_eq!(
            ours.tensor_data(mine),
            reference.tensor_data(t),
            "{}",
            t.name
        );
    }
    let reference_bytes =
        std::fs::read(bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-f32.gguf")).unwrap();
    assert!(
        bytes == reference_bytes,
        "whole file differs from gguf-py's"
    );
}

fn assert_tq_identical(ty: OutputType, file: &str) {
    let (_tmp, ours, bytes) = convert_to(&latent_dir(), ty);
    let reference = oracle_gguf(file);
    assert_same_metadata(&ours, &reference);
    assert_same_tensor_table(&ours, &reference);
    for t in reference.tensors() {
        let mine = ours.tensor(&t.name).unwrap();
        assert_eq!(
            ours.tensor_data(mine),
            reference.tensor_data(t),
            "{}",
            t.name
        );
    }
    let reference_bytes =
        std::fs::read(bitnet_testdata::oracle(&format!("tiny-b158/gguf/{file}"))).unwrap();
    assert!(bytes == reference_bytes, "whole file differs from {file}");
}

#[test]
fn latent_to_tq2_0_is_byte_identical_to_gguf_py() {
    assert_tq_identical(OutputType::TQ2_0, "tiny-b158-tq2_0.gguf");
}

#[test]
fn latent_to_tq1_0_is_byte_identical_to_gguf_py() {
    assert_tq_identical(OutputType::TQ1_0, "tiny-b158-tq1_0.gguf");
}

#[test]
fn tq_block_scales_are_the_f32_scale_rounded_to_f16() {
    // The TQ2_0 file's levels equal the F32 file's, block scales within f16 rounding.
    let (_tmp, ours, _) = convert_to(&latent_dir(), OutputType::TQ2_0);
    let f32_file = oracle_gguf("tiny-b158-f32.gguf");
    for t in f32_file
        .tensors()
        .iter()
        .filter(|t| t.dims.len() == 2 && t.name != "token_embd.weight")
    {
        let mine = ours.tensor(&t.name).unwrap();
        let tq = decode_ternary(GgmlType::TQ2_0, ours.tensor_data(mine), &t.dims).unwrap();
        let reference: Vec<f32> = f32_file
            .tensor_data(t)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let s = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, (&level, &r)) in tq.values.iter().zip(&reference).enumerate() {
            assert_eq!(f32::from(level) * s, r, "{} element {i}", t.name);
        }
        let TernaryScales::PerBlock { scales, .. } = &tq.scales else {
            panic!("TQ2_0 has block scales")
        };
        for &d in scales.iter().filter(|&&d| d != 0.0) {
            assert!(
                ((d - s) / s).abs() <= 4e-4,
                "{}: block scale {d} vs {s}",
                t.name
            );
        }
    }
}

#[test]
fn packed_offline_checkpoint_converts_to_the_same_file_as_the_latent_one() {
    for ty in [OutputType::I2S, OutputType::TQ1_0] {
        let (_a, _, latent) = convert_to(&latent_dir(), ty);
        let (_b, _, packed) = convert_to(&packed_dir(), ty);
        assert!(
            latent == packed,
            "{ty}: packed and latent conversions differ"
        );
    }
}

#[test]
fn untied_config_without_lm_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = latent_dir();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["tie_word_embeddings"] = serde_json::Value::Bool(false);
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    for f in ["model.safetensors", "tokenizer.model"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let opts = ConvertOptions {
        output_type: OutputType::I2S,
        name: None,
        progress: false,
    };
    let err = convert(tmp.path(), &tmp.path().join("out.gguf"), &opts).unwrap_err();
    assert!(err.to_string().contains("no lm_head.weight"), "{err}");
    assert!(!tmp.path().join("out.gguf").exists());
}

/// The SiLU model (llama.cpp's `bitnet` architecture) against llama.cpp's own converter and
/// quantizer: every tensor byte-identical, the vocabulary and hyper-parameters equal.
#[test]
fn silu_model_matches_llama_cpp_tq_files() {
    let src = bitnet_testdata::oracle("tiny-bitnet-silu/hf");
    for (ty, file) in [
        (OutputType::TQ2_0, "tiny-bitnet-llamacpp-tq2_0.gguf"),
        (OutputType::TQ1_0, "tiny-bitnet-llamacpp-tq1_0.gguf"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("silu.gguf");
        let opts = ConvertOptions {
            output_type: ty,
            name: None,
            progress: false,
        };
        let summary = convert(&src, &out, &opts).unwrap();
        assert_eq!(summary.architecture, "bitnet");
        let ours = GgufFile::open(&out).unwrap();
        let reference = GgufFile::open(bitnet_testdata::oracle(&format!(
            "tiny-bitnet-silu/gguf/{file}"
        )))
        .unwrap();
        assert_eq!(ours.tensors().len(), reference.tensors().len());
        for t in reference.tensors() {
            let mine = ours
                .tensor(&t.name)
                .unwrap_or_else(|| panic!("{ty}: no {}", t.name));
            assert_eq!(
                (&mine.dims, mine.ggml_type),
                (&t.dims, t.ggml_type),
                "{}",
                t.name
            );
            assert_eq!(
                ours.tensor_data(mine),
                reference.tensor_data(t),
                "{ty}: {}",
                t.name
            );
        }
        for (key, value) in reference.metadata() {
            let skip = key.starts_with("general.") && key != "general.architecture"
                || key.starts_with("bitnet.rope.scaling")
                || key.starts_with("GGUF.");
            if !skip {
                assert_eq!(ours.get(key), Some(value), "{ty}: metadata {key}");
            }
        }
        assert_eq!(
            ours.get_u64("general.file_type"),
            reference.get_u64("general.file_type")
        );
    }
}

/// `tokenizer_config.json` carries the chat template and the BOS/EOS flags into the GGUF.
#[test]
fn tokenizer_config_supplies_chat_template_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let src = latent_dir();
    for f in ["config.json", "model.safetensors", "tokenizer.model"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}";
    let tc = serde_json::json!({
        "add_bos_token": false,
        "add_eos_token": true,
        "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": template}],
    });
    std::fs::write(tmp.path().join("tokenizer_config.json"), tc.to_string()).unwrap();
    let out = tmp.path().join("out.gguf");
    let opts = ConvertOptions {
        output_type: OutputType::I2S,
        name: None,
        progress: false,
    };
    convert(tmp.path(), &out, &opts).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_str("tokenizer.chat_template"), Some(template));
    assert_eq!(file.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    assert_eq!(file.get_bool("tokenizer.ggml.add_eos_token"), Some(true));
    // The directory name stands in for general.name when the config has no _name_or_path.
    let dir_name = tmp.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(file.get_str("general.name"), Some(dir_name));
}
