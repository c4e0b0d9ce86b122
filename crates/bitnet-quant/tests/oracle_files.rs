//! Against files nobody here wrote (testdata/oracle): bitnet.cpp's I2_S packing of tiny-b158,
//! gguf-py's TQ1_0/TQ2_0 files of the same model, llama.cpp's converter's TQ files of
//! tiny-bitnet-silu, and the F32 files holding the ternarised values t·s.

use bitnet_gguf::{GgufFile, TensorInfo};
use bitnet_quant::{
    decode_ternary, dequantize, encode_ternary, quantize, ternarize_absmean, GgmlType,
    TernaryScales,
};
use bitnet_testdata::oracle;

fn open(rel: &str) -> GgufFile {
    GgufFile::open(oracle(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn f32_values(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file
        .tensor(name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    assert_eq!(t.ggml_type, GgmlType::F32, "{name}");
    let mut out = vec![0f32; t.n_elements as usize];
    dequantize(GgmlType::F32, file.tensor_data(t), out.len(), &mut out).unwrap();
    out
}

/// The 14 ternary linears of a quantized tiny-model file.
fn ternary_pairs(quant: &GgufFile, ty: GgmlType) -> Vec<&TensorInfo> {
    let list: Vec<&TensorInfo> = quant
        .tensors()
        .iter()
        .filter(|t| t.ggml_type == ty)
        .collect();
    assert_eq!(
        list.len(),
        14,
        "expected the 14 linears of the tiny model as {}",
        ty.name()
    );
    list
}

/// The per-tensor scale of a t·s tensor: its largest magnitude.
fn absmax(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max(v.abs()))
}

#[test]
fn i2s_decodes_to_the_f32_files_values_and_scale() {
    let f32_file = open("tiny-b158/gguf/tiny-b158-f32.gguf");
    let i2s_file = open("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let mut elements = 0;
    for t in ternary_pairs(&i2s_file, GgmlType::I2S) {
        let want = f32_values(&f32_file, &t.name);
        let bytes = i2s_file.tensor_data(t);
        let tern = decode_ternary(GgmlType::I2S, bytes, &t.dims).unwrap();
        assert_eq!(
            (tern.cols, tern.rows),
            (t.dims[0] as usize, t.dims[1] as usize)
        );
        let s = absmax(&want);
        assert_eq!(
            tern.scales,
            TernaryScales::PerTensor(s),
            "{}: scale",
            t.name
        );
        let got = tern.to_f32();
        let mut deq = vec![0f32; want.len()];
        dequantize(GgmlType::I2S, bytes, want.len(), &mut deq).unwrap();
        for i in 0..want.len() {
            assert_eq!(
                got[i].to_bits(),
                want[i].to_bits(),
                "{} element {i}",
                t.name
            );
            assert_eq!(
                deq[i].to_bits(),
                want[i].to_bits(),
                "{} element {i}",
                t.name
            );
        }
        elements += want.len();
    }
    assert_eq!(
        elements,
        2 * (256 * 256 * 2 + 256 * 128 * 2 + 256 * 768 * 3)
    );
}

#[test]
fn i2s_packer_reproduces_bitnet_cpp_bytes() {
    let f32_file = open("tiny-b158/gguf/tiny-b158-f32.gguf");
    let i2s_file = open("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let mut nonzero_padding = 0;
    for t in ternary_pairs(&i2s_file, GgmlType::I2S) {
        let oracle_bytes = i2s_file.tensor_data(t);
        let n = t.n_elements as usize;
        let meaningful = n / 4 + 4; // codes + f32 scale; the 28 padding bytes are garbage
        let ours = quantize(GgmlType::I2S, &f32_values(&f32_file, &t.name)).unwrap();
        assert_eq!(ours.len(), oracle_bytes.len(), "{}", t.name);
        assert!(
            ours[..meaningful] == oracle_bytes[..meaningful],
            "{}: quantize",
            t.name
        );
        let tern = decode_ternary(GgmlType::I2S, oracle_bytes, &t.dims).unwrap();
        let encoded = encode_ternary(&tern, GgmlType::I2S).unwrap();
        assert!(
            encoded[..meaningful] == oracle_bytes[..meaningful],
            "{}: encode",
            t.name
        );
        nonzero_padding += usize::from(oracle_bytes[meaningful..].iter().any(|&b| b != 0));
    }
    // The oracle README: 6 of the 14 tensors have non-zero padding, which must be ignored.
    assert_eq!(nonzero_padding, 6);
}

/// TQ files: levels equal the F32 file's t, each block scale is f16(s) (0 for all-zero blocks),
/// decode → encode is lossless and our quantizer reproduces the file bytes.
fn check_tq_file(f32_rel: &str, tq_rel: &str, ty: GgmlType) {
    let f32_file = open(f32_rel);
    let tq_file = open(tq_rel);
    for t in ternary_pairs(&tq_file, ty) {
        let want = f32_values(&f32_file, &t.name);
        let s = absmax(&want);
        let bytes = tq_file.tensor_data(t);
        let tern = decode_ternary(ty, bytes, &t.dims).unwrap();
        for (i, (&level, &x)) in tern.values.iter().zip(&want).enumerate() {
            let expected = if x == 0.0 {
                0
            } else if x > 0.0 {
                1
            } else {
                -1
            };
            assert_eq!(level, expected, "{} element {i}", t.name);
        }
        let TernaryScales::PerBlock {
            block_len: 256,
            scales,
        } = &tern.scales
        else {
            panic!("{}: TQ scales must be per 256-block", t.name);
        };
        let f16_s = half::f16::from_f32(s).to_f32();
        for (b, &d) in scales.iter().enumerate() {
            let block_is_zero = tern.values[256 * b..256 * (b + 1)].iter().all(|&v| v == 0);
            let expected = if block_is_zero { 0.0 } else { f16_s };
            assert_eq!(d.to_bits(), expected.to_bits(), "{} block {b}", t.name);
            // f16 rounding of a normal value: relative error at most 2^-11.
            assert!(
                block_is_zero || ((d - s) / s).abs() <= 2f32.powi(-11),
                "{}",
                t.name
            );
        }
        assert!(
            encode_ternary(&tern, ty).unwrap() == bytes,
            "{}: re-encode",
            t.name
        );
        assert!(
            quantize(ty, &want).unwrap() == bytes,
            "{}: quantize",
            t.name
        );
    }
}

#[test]
fn tq2_0_file_of_tiny_b158() {
    check_tq_file(
        "tiny-b158/gguf/tiny-b158-f32.gguf",
        "tiny-b158/gguf/tiny-b158-tq2_0.gguf",
        GgmlType::TQ2_0,
    );
}

#[test]
fn tq1_0_file_of_tiny_b158() {
    check_tq_file(
        "tiny-b158/gguf/tiny-b158-f32.gguf",
        "tiny-b158/gguf/tiny-b158-tq1_0.gguf",
        GgmlType::TQ1_0,
    );
}

#[test]
fn tq2_0_file_of_llama_cpp_converter() {
    check_tq_file(
        "tiny-bitnet-silu/gguf/tiny-bitnet-llamacpp-f32.gguf",
        "tiny-bitnet-silu/gguf/tiny-bitnet-llamacpp-tq2_0.gguf",
        GgmlType::TQ2_0,
    );
}

#[test]
fn tq1_0_file_of_llama_cpp_converter() {
    check_tq_file(
        "tiny-bitnet-silu/gguf/tiny-bitnet-llamacpp-f32.gguf",
        "tiny-bitnet-silu/gguf/tiny-bitnet-llamacpp-tq1_0.gguf",
        GgmlType::TQ1_0,
    );
}

/// HF name of a GGUF linear of the tiny model.
fn hf_name(gguf_name: &str) -> String {
    let rest = gguf_name.strip_prefix("blk.").unwrap();
    let (layer, tail) = rest.split_once('.').unwrap();
    let module = match tail {
        "attn_q.weight" => "self_attn.q_proj",
        "attn_k.weight" => "self_attn.k_proj",
        "attn_v.weight" => "self_attn.v_proj",
        "attn_output.weight" => "self_attn.o_proj",
        "ffn_gate.weight" => "mlp.gate_proj",
        "ffn_up.weight" => "mlp.up_proj",
        "ffn_down.weight" => "mlp.down_proj",
        other => panic!("unexpected tensor {other}"),
    };
    format!("model.layers.{layer}.{module}.weight")
}

#[test]
fn absmean_ternarisation_of_the_latent_checkpoint_matches_the_f32_file() {
    let st_bytes = std::fs::read(oracle("tiny-b158/hf/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let f32_file = open("tiny-b158/gguf/tiny-b158-f32.gguf");
    let i2s_file = open("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    for t in ternary_pairs(&i2s_file, GgmlType::I2S) {
        let latent = st.tensor(&hf_name(&t.name)).unwrap();
        assert_eq!(latent.dtype(), safetensors::Dtype::F32);
        // HF [out, in] row-major has the same memory order as GGUF [in, out].
        assert_eq!(latent.shape(), [t.dims[1] as usize, t.dims[0] as usize]);
        let w: Vec<f32> = latent
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let tern = ternarize_absmean(t.dims[1] as usize, t.dims[0] as usize, &w).unwrap();
        let want = f32_values(&f32_file, &t.name);
        let got = tern.to_f32();
        let same = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        assert_eq!(
            same,
            want.len(),
            "{}: {} of {} values differ",
            t.name,
            want.len() - same,
            want.len()
        );
    }
}
