//! Bit-exactness against PyPI gguf 0.19.0 (`gguf.quants`): dequantization of thousands of random
//! blocks per type plus blocks with extreme scales (0, −0, subnormal, max, ±inf, NaN), and
//! byte-identical quantization for every type gguf-py can quantize. Expected digests come from
//! tools/gen_quant_refs.py (committed under tests/data/).

mod common;

use bitnet_quant::{dequantize, quantize};
use common::*;

fn check_dequant(name: &str) {
    let ty = type_named(name);
    let r = read_ref(&format!("deq_{name}.bin"), b"BQDQ");
    let random = stream_bytes(r.seed, r.n_random * r.type_size);
    let blocks = random
        .chunks_exact(r.type_size)
        .chain(r.special.chunks_exact(r.type_size));
    let mut out = vec![0f32; r.block_len];
    let got: Vec<u64> = blocks
        .map(|b| {
            dequantize(ty, b, r.block_len, &mut out).expect("dequantize");
            f32_digest(&out)
        })
        .collect();
    let report = mismatch_report(&got, &r.digests, r.n_random);
    assert!(
        report.is_empty(),
        "{name} dequantization vs gguf-py: {report}"
    );
}

fn check_quant(name: &str) {
    let ty = type_named(name);
    let r = read_ref(&format!("q_{name}.bin"), b"BQQT");
    let mut inputs = random_quant_inputs(r.seed, r.n_random, r.block_len);
    inputs.extend(
        r.special
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
    );
    let got: Vec<u64> = inputs
        .chunks_exact(r.block_len)
        .map(|x| {
            let bytes = quantize(ty, x).expect("quantize");
            assert_eq!(bytes.len(), r.type_size, "{name}: block size");
            fnv1a(bytes)
        })
        .collect();
    let report = mismatch_report(&got, &r.digests, r.n_random);
    assert!(
        report.is_empty(),
        "{name} quantization vs gguf-py: {report}"
    );
}

macro_rules! reference_tests {
    ($($test:ident => $check:ident($name:literal);)*) => {
        $(#[test] fn $test() { $check($name); })*
    };
}

reference_tests! {
    dequant_f16 => check_dequant("F16");
    dequant_bf16 => check_dequant("BF16");
    dequant_q4_0 => check_dequant("Q4_0");
    dequant_q4_1 => check_dequant("Q4_1");
    dequant_q5_0 => check_dequant("Q5_0");
    dequant_q5_1 => check_dequant("Q5_1");
    dequant_q8_0 => check_dequant("Q8_0");
    dequant_q2_k => check_dequant("Q2_K");
    dequant_q3_k => check_dequant("Q3_K");
    dequant_q4_k => check_dequant("Q4_K");
    dequant_q5_k => check_dequant("Q5_K");
    dequant_q6_k => check_dequant("Q6_K");
    dequant_iq2_s => check_dequant("IQ2_S");
    dequant_tq1_0 => check_dequant("TQ1_0");
    dequant_tq2_0 => check_dequant("TQ2_0");
    quant_f16 => check_quant("F16");
    quant_bf16 => check_quant("BF16");
    quant_q4_0 => check_quant("Q4_0");
    quant_q4_1 => check_quant("Q4_1");
    quant_q5_0 => check_quant("Q5_0");
    quant_q5_1 => check_quant("Q5_1");
    quant_q8_0 => check_quant("Q8_0");
    quant_tq1_0 => check_quant("TQ1_0");
    quant_tq2_0 => check_quant("TQ2_0");
}
