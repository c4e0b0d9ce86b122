//! Q6_K against PyPI gguf 0.19.0, which dequantizes Q6_K but cannot quantize it: the fixture
//! (tests/data/q6_k_gguf_ref.bin, written by tools/gen_q6k_refs.py) holds inputs, the bytes this
//! quantizer wrote for them and gguf's decoding of those bytes. The quantizer must still write
//! exactly those bytes, our dequantizer must give gguf's values bit for bit, and gguf's values must
//! be within the quantization error bounds of the inputs.

use bitnet_quant::{dequantize, quantize, GgmlType};

const QK: usize = 256;
const BLOCK_BYTES: usize = 210;

struct Reference {
    x: Vec<f32>,
    bytes: Vec<u8>,
    gguf: Vec<f32>,
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn load() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/q6_k_gguf_ref.bin");
    let data = std::fs::read(path).unwrap_or_else(|e| {
        panic!("missing fixture {path} ({e}); regenerate with python3 tools/gen_q6k_refs.py")
    });
    assert_eq!(&data[0..4], b"BQ6K", "{path}: bad magic");
    let n = u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
    let (xs, rest) = data[12..].split_at(n * QK * 4);
    let (bytes, values) = rest.split_at(n * BLOCK_BYTES);
    assert_eq!(values.len(), n * QK * 4, "{path}: truncated");
    Reference {
        x: floats(xs),
        bytes: bytes.to_vec(),
        gguf: floats(values),
    }
}

#[test]
fn quantizer_still_writes_the_bytes_gguf_decoded() {
    let r = load();
    let ours = quantize(GgmlType::Q6K, &r.x).unwrap();
    for (b, (ours, theirs)) in ours
        .chunks_exact(BLOCK_BYTES)
        .zip(r.bytes.chunks_exact(BLOCK_BYTES))
        .enumerate()
    {
        assert_eq!(
            ours, theirs,
            "block {b}: the quantizer's bytes changed; if on purpose, regenerate with \
             python3 tools/gen_q6k_refs.py"
        );
    }
}

#[test]
fn dequantizer_gives_gguf_values_of_our_bytes() {
    let r = load();
    let mut ours = vec![0f32; r.x.len()];
    dequantize(GgmlType::Q6K, &r.bytes, r.x.len(), &mut ours).unwrap();
    let ours: Vec<u32> = ours.iter().map(|v| v.to_bits()).collect();
    let theirs: Vec<u32> = r.gguf.iter().map(|v| v.to_bits()).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn gguf_values_within_quantization_error_bounds() {
    let r = load();
    let (mut err2, mut x2) = (0f64, 0f64);
    for (b, (x, y)) in
        r.x.chunks_exact(QK)
            .zip(r.gguf.chunks_exact(QK))
            .enumerate()
    {
        let a = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max_err = x.iter().zip(y).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        // Half a step of the largest sub-block scale (a/64) plus what the f16 super-scale and
        // the −32 end of the code range can cost: within a/32 (and 1e-15, ggml's all-zero limit).
        assert!(
            max_err <= a / 32.0 + 1e-15,
            "block {b}: max error {max_err} > max|x| {a} / 32"
        );
        if b < 24 {
            // The embedding-like rows (normal, σ = 0.02): their overall relative RMS error.
            for (x, y) in x.iter().zip(y) {
                err2 += f64::from(x - y).powi(2);
                x2 += f64::from(*x).powi(2);
            }
        }
    }
    let relative_rms = (err2 / x2).sqrt();
    assert!(
        relative_rms < 0.02,
        "embedding-like rows: relative RMS error {relative_rms}"
    );
}

/// Writes this quantizer's bytes for tools/gen_q6k_refs.py: reads `$BITNET_Q6K_WORK/x.bin`
/// (f32 blocks), writes `$BITNET_Q6K_WORK/q6k.bin`.
#[test]
#[ignore = "run by tools/gen_q6k_refs.py"]
fn write_q6_k_bytes_for_gguf() {
    let work = std::env::var("BITNET_Q6K_WORK").expect("BITNET_Q6K_WORK names the work dir");
    let work = std::path::Path::new(&work);
    let x = floats(&std::fs::read(work.join("x.bin")).expect("x.bin"));
    let bytes = quantize(GgmlType::Q6K, &x).expect("whole blocks");
    std::fs::write(work.join("q6k.bin"), bytes).expect("write q6k.bin");
}
