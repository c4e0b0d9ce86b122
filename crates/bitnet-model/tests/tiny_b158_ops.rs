//! Op-level agreement with bitnet.cpp on tiny-b158 (oracle README §5, §6.2): each traced node's
//! input, fed through our operation, must reproduce bitnet.cpp's output — every BitLinear bit for
//! bit, RMSNorm within 1 ulp, RoPE within 1e-5, softmax within 1e-6, the LM head within 1e-5.

mod common;

use std::collections::HashMap;

use bitnet_model::ops;
use bitnet_model::{Linear, Model, RopeStyle};
use common::{pool, read_tensor, sequences, Matrix};
use safetensors::SafeTensors;

struct Trace {
    path: std::path::PathBuf,
    /// (key, name, op) in evaluation order.
    index: Vec<(String, String, String)>,
}

impl Trace {
    fn open() -> Self {
        let path =
            bitnet_testdata::oracle("tiny-b158/reference/bitnetcpp-i2_s-trace-seq0.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta: &HashMap<String, String> = meta.metadata().as_ref().expect("trace metadata");
        let index: serde_json::Value = serde_json::from_str(&meta["index"]).unwrap();
        let index = index
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                    e["op"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Trace { path, index }
    }

    /// The `nth` node (0-based) named `name` with operation `op`.
    fn node(&self, name: &str, op: &str, nth: usize) -> Matrix {
        let key = self
            .index
            .iter()
            .filter(|(_, n, o)| n == name && o == op)
            .nth(nth)
            .unwrap_or_else(|| panic!("trace has no node {name}/{op} #{nth}"))
            .0
            .clone();
        read_tensor(&self.path, &key)
    }

    fn key_of(&self, name: &str, op: &str) -> usize {
        self.index
            .iter()
            .position(|(_, n, o)| n == name && o == op)
            .unwrap_or_else(|| panic!("trace has no node {name}/{op}"))
    }
}

fn model() -> Model {
    Model::open(bitnet_testdata::oracle(
        "tiny-b158/gguf/tiny-b158-i2_s.gguf",
    ))
    .unwrap()
}

fn ulp_distance(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    let ia = a.to_bits() as i64;
    let ib = b.to_bits() as i64;
    let key = |i: i64| if i < 0x8000_0000 { i } else { 0x8000_0000 - i };
    (key(ia) - key(ib)).unsigned_abs() as u32
}

#[test]
fn every_bitlinear_reproduces_bitnet_cpp_bit_for_bit() {
    let model = model();
    let trace = Trace::open();
    let pool = pool();
    let mut checked = 0;
    for (il, layer) in model.layers().iter().enumerate() {
        let cases: [(&Linear, String, String); 7] = [
            (&layer.wq, format!("attn_norm-{il}"), format!("Qcur-{il}")),
            (&layer.wk, format!("attn_norm-{il}"), format!("Kcur-{il}")),
            (&layer.wv, format!("attn_norm-{il}"), format!("Vcur-{il}")),
            (
                &layer.wo,
                format!("attn_sub_norm-{il}"),
                format!("attn_o_out-{il}"),
            ),
            (
                &layer.ffn_gate,
                format!("ffn_norm-{il}"),
                format!("ffn_gate-{il}"),
            ),
            (
                &layer.ffn_up,
                format!("ffn_norm-{il}"),
                format!("ffn_up-{il}"),
            ),
            (
                &layer.ffn_down,
                format!("ffn_sub_norm-{il}"),
                format!("ffn_down-{il}"),
            ),
        ];
        for (lin, input, output) in cases {
            assert!(
                matches!(lin, Linear::Ternary { .. }),
                "{output} should be ternary"
            );
            let x = trace.node(&input, "MUL", 0);
            let expect = trace.node(&output, "MUL_MAT", 0);
            let mut y = vec![0.0f32; expect.data.len()];
            lin.forward(&x.data, x.rows, &mut y, &pool).unwrap();
            let bad = y
                .iter()
                .zip(&expect.data)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                bad,
                0,
                "{input} -> {output}: {bad} of {} values differ",
                y.len()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
}

#[test]
fn embedding_and_rms_norms_match_within_one_ulp() {
    let model = model();
    let trace = Trace::open();
    let cfg = model.config().clone();
    let ids = &sequences(&bitnet_testdata::oracle(
        "tiny-b158/reference/sequences.json",
    ))[0];

    // Embedding lookup: exact (F16 values widened).
    let embd = trace.node("inp_embd", "GET_ROWS", 0);
    let mut row = vec![0.0f32; cfg.n_embd];
    for (t, &id) in ids.iter().enumerate() {
        model.embed(id, &mut row).unwrap();
        assert_eq!(row.as_slice(), embd.row(t), "embedding of token {id}");
    }

    // (input node, norm weight, output node, nth occurrence of the MUL output)
    let mut worst = 0;
    for (il, layer) in model.layers().iter().enumerate() {
        let attn_in = if il == 0 {
            trace.node("inp_embd", "GET_ROWS", 0)
        } else {
            trace.node(&format!("l_out-{}", il - 1), "ADD", 0)
        };
        let cases: [(Matrix, &Vec<f32>, String); 4] = [
            (attn_in, &layer.attn_norm, format!("attn_norm-{il}")),
            (
                trace.node(&format!("kqv_out-{il}"), "CONT", 0),
                layer.attn_sub_norm.as_ref().unwrap(),
                format!("attn_sub_norm-{il}"),
            ),
            (
                trace.node(&format!("ffn_inp-{il}"), "ADD", 0),
                &layer.ffn_norm,
                format!("ffn_norm-{il}"),
            ),
            (
                trace.node(&format!("ffn_out-{il}"), "MUL", 0),
                layer.ffn_sub_norm.as_ref().unwrap(),
                format!("ffn_sub_norm-{il}"),
            ),
        ];
        for (x, w, out_name) in cases {
            let expect = trace.node(&out_name, "MUL", 0);
            let mut y = vec![0.0f32; w.len()];
            for t in 0..x.rows {
                ops::rms_norm_weighted(x.row(t), w, cfg.rms_eps, &mut y);
                for (a, b) in y.iter().zip(expect.row(t)) {
                    let d = ulp_distance(*a, *b);
                    worst = worst.max(d);
                    assert!(d <= 1, "{out_name} token {t}: {a} vs {b}");
                }
            }
        }
    }
    let final_in = trace.node("l_out-1", "ADD", 0);
    let expect = trace.node("result_norm", "MUL", 0);
    let mut y = vec![0.0f32; cfg.n_embd];
    for t in 0..final_in.rows {
        ops::rms_norm_weighted(final_in.row(t), model.output_norm(), cfg.rms_eps, &mut y);
        for (a, b) in y.iter().zip(expect.row(t)) {
            assert!(
                ulp_distance(*a, *b) <= 1,
                "result_norm token {t}: {a} vs {b}"
            );
        }
    }
    eprintln!("RMSNorm: worst ulp distance {worst}");
}

#[test]
fn rope_matches_within_1e5() {
    let model = model();
    let trace = Trace::open();
    let cfg = model.config().clone();
    assert_eq!(cfg.arch.rope, RopeStyle::Neox);
    let mut worst = 0.0f32;
    for il in 0..cfg.n_layer {
        for name in [format!("Qcur-{il}"), format!("Kcur-{il}")] {
            let before = trace.node(&name, "MUL_MAT", 0);
            let after = trace.node(&name, "ROPE", 0);
            let mut cos = vec![0.0f32; cfg.n_rot / 2];
            let mut sin = vec![0.0f32; cfg.n_rot / 2];
            for t in 0..before.rows {
                let mut x = before.row(t).to_vec();
                ops::rope_table(t, cfg.n_rot, cfg.rope_base_of(il), &mut cos, &mut sin);
                ops::rope_apply(&mut x, cfg.head_dim, cfg.arch.rope, &cos, &sin);
                for (a, b) in x.iter().zip(after.row(t)) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
    }
    eprintln!("RoPE: max |Δ| {worst:e}");
    assert!(worst <= 1e-5, "RoPE max |Δ| {worst}");
}

#[test]
fn softmax_matches_within_1e6() {
    let model = model();
    let trace = Trace::open();
    let cfg = model.config().clone();
    let mut worst = 0.0f32;
    for il in 0..cfg.n_layer {
        // kq: [head][token][kv column], 32 columns of which the first `t + 1` are visible.
        let kq = trace.node(&format!("kq-{il}"), "MUL_MAT", 0);
        let soft = trace.node(&format!("kq_soft_max_ext-{il}"), "SOFT_MAX", 0);
        let n_kv = 32;
        let n_tok = kq.cols / n_kv;
        for h in 0..kq.rows {
            for t in 0..n_tok {
                let off = t * n_kv;
                let mut row: Vec<f32> = kq.row(h)[off..off + n_kv]
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        if j <= t {
                            v * cfg.attention_scale
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect();
                bitnet_kernels::exp::softmax_in_place(&mut row, false);
                for (a, b) in row.iter().zip(&soft.row(h)[off..off + n_kv]) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
    }
    eprintln!("softmax: max |Δ| {worst:e}");
    assert!(worst <= 1e-6, "softmax max |Δ| {worst}");
}

#[test]
fn lm_head_matches_within_1e5() {
    let model = model();
    let trace = Trace::open();
    let pool = pool();
    let x = trace.node("result_norm", "MUL", 0);
    let expect = trace.node("result_output", "MUL_MAT", 0);
    let mut y = vec![0.0f32; expect.data.len()];
    model
        .head()
        .forward(&x.data, x.rows, &mut y, &pool)
        .unwrap();
    let worst = y
        .iter()
        .zip(&expect.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("LM head: max |Δ| {worst:e}");
    assert!(worst <= 1e-5, "head max |Δ| {worst}");
    // The trace is in evaluation order: the head is the last node.
    assert_eq!(
        trace.key_of("result_output", "MUL_MAT"),
        trace.index.len() - 1
    );
}
