//! Every tensor of the two real models (fetched by scripts/fetch-test-data.sh) dequantizes
//! bit-identically to PyPI gguf 0.19.0: SmolLM2-135M-Instruct (Q4_1, Q8_0, F32) and Gemma-3-270M
//! Q4_K_M (Q4_K, Q5_0, Q6_K, Q8_0, F32). Digests from tools/gen_quant_model_refs.py.

mod common;

use bitnet_gguf::GgufFile;
use bitnet_quant::dequantize;
use common::fnv1a;

/// The tools/gen_quant_model_refs.py digest: FNV-1a over the FNV-1a digests of the ne0-rows.
fn tensor_digest(values: &[f32], ne0: usize) -> u64 {
    let rows = values.chunks_exact(ne0).map(|row| {
        fnv1a(row.iter().flat_map(|v| {
            let bits = if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() };
            bits.to_le_bytes()
        }))
    });
    fnv1a(rows.flat_map(u64::to_le_bytes))
}

fn check_model(file_name: &str, path: std::path::PathBuf) {
    let refs: serde_json::Value =
        serde_json::from_str(include_str!("data/model_dequant_digests.json")).unwrap();
    let entries = refs[file_name].as_array().expect("model in digest file");
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        file.tensors().len(),
        entries.len(),
        "{file_name}: tensor count"
    );
    let mut out = Vec::new();
    for entry in entries {
        let name = entry[0].as_str().unwrap();
        let ty_name = entry[1].as_str().unwrap();
        let n = entry[2].as_u64().unwrap() as usize;
        let want = u64::from_str_radix(entry[3].as_str().unwrap(), 16).unwrap();
        let t = file
            .tensor(name)
            .unwrap_or_else(|| panic!("{file_name}: no tensor {name}"));
        assert_eq!(t.ggml_type.name(), ty_name, "{name}: type");
        assert_eq!(t.n_elements as usize, n, "{name}: element count");
        out.resize(n, 0.0);
        dequantize(t.ggml_type, file.tensor_data(t), n, &mut out).unwrap();
        let got = tensor_digest(&out, t.dims[0] as usize);
        assert_eq!(
            got, want,
            "{file_name}: {name} ({ty_name}) differs from gguf-py"
        );
    }
}

#[test]
fn smollm2_dequantizes_like_gguf_py() {
    check_model(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        bitnet_testdata::smollm2(),
    );
}

#[test]
fn gemma3_dequantizes_like_gguf_py() {
    check_model("gemma-3-270m-q4_k_m.gguf", bitnet_testdata::gemma3());
}
