//! `bitnet synth`: writes a model of a real BitNet shape with random ternary weights, for benchmarks.
//! Speed does not depend on weight values, and no real BitNet weights can be downloaded here.
//! I2_S files use arch `bitnet-b1.58` (readable by bitnet.cpp); TQ1_0/TQ2_0 files use llama.cpp's
//! `bitnet` arch (readable by mainline llama.cpp).

use std::path::PathBuf;

use anyhow::{bail, Context};
use bitnet_gguf::{GgmlType, GgufWriter, MetadataValue};
use bitnet_quant::{encode_ternary, f32_to_f16_bits, TernaryScales, TernaryTensor};

/// Arguments of `bitnet synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Model shape: tiny (the oracle's tiny-b158), large (bitnet_b1_58-large), 2b4t
    /// (microsoft/bitnet-b1.58-2B-4T), 3b (bitnet_b1_58-3B).
    #[arg(long, default_value = "2b4t")]
    preset: String,
    /// Ternary storage type of the linear layers: i2_s, tq2_0 or tq1_0.
    #[arg(long = "type", default_value = "i2_s")]
    ty: String,
    /// Copy the tokenizer.* keys from this GGUF (e.g. a vocab-only file); otherwise no vocabulary.
    #[arg(long)]
    vocab_from: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
}

/// The shape of a BitNet b1.58 model.
#[derive(Debug, Clone, Copy)]
struct Preset {
    name: &'static str,
    n_embd: u64,
    n_ff: u64,
    n_layer: u64,
    n_head: u64,
    n_head_kv: u64,
    n_vocab: u64,
    n_ctx: u64,
    rope_theta: f32,
}

const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        n_embd: 256,
        n_ff: 768,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_vocab: 512,
        n_ctx: 256,
        rope_theta: 500000.0,
    },
    Preset {
        name: "large",
        n_embd: 1536,
        n_ff: 4096,
        n_layer: 24,
        n_head: 16,
        n_head_kv: 16,
        n_vocab: 32002,
        n_ctx: 2048,
        rope_theta: 10000.0,
    },
    Preset {
        name: "2b4t",
        n_embd: 2560,
        n_ff: 6912,
        n_layer: 30,
        n_head: 20,
        n_head_kv: 5,
        n_vocab: 128256,
        n_ctx: 4096,
        rope_theta: 500000.0,
    },
    Preset {
        name: "3b",
        n_embd: 3200,
        n_ff: 8640,
        n_layer: 26,
        n_head: 32,
        n_head_kv: 32,
        n_vocab: 32002,
        n_ctx: 2048,
        rope_theta: 10000.0,
    },
];

/// SplitMix64: a small, fast, seedable generator; plenty for random weights.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values drawn from {-1, 0, 1}.
    fn trits(&mut self, n: usize) -> Vec<i8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut r = self.next();
            for _ in 0..(n - out.len()).min(16) {
                out.push(((r & 0xF) % 3) as i8 - 1);
                r >>= 4;
            }
        }
        out
    }
}

/// Writes the file.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let Some(p) = PRESETS.iter().copied().find(|p| p.name == args.preset) else {
        let names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        bail!(
            "unknown preset {:?}; choose one of {}",
            args.preset,
            names.join(", ")
        );
    };
    let (ty, arch, file_type) = match args.ty.as_str() {
        "i2_s" => (GgmlType::I2S, "bitnet-b1.58", 40u32),
        "tq2_0" => (GgmlType::TQ2_0, "bitnet", 37),
        "tq1_0" => (GgmlType::TQ1_0, "bitnet", 36),
        other => bail!("unknown --type {other:?}; choose i2_s, tq2_0 or tq1_0"),
    };
    let vocab_file = match &args.vocab_from {
        Some(path) => Some(
            bitnet_gguf::GgufFile::open(path)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };

    let mut w = GgufWriter::new();
    let key = |k: &str| format!("{arch}.{k}");
    w.add_metadata("general.architecture", MetadataValue::String(arch.into()));
    w.add_metadata(
        "general.name",
        MetadataValue::String(format!("synthetic {} ({})", p.name, args.ty)),
    );
    w.add_metadata("general.file_type", MetadataValue::U32(file_type));
    w.add_metadata("general.quantization_version", MetadataValue::U32(2));
    w.add_metadata(key("context_length"), MetadataValue::U32(p.n_ctx as u32));
    w.add_metadata(key("embedding_length"), MetadataValue::U32(p.n_embd as u32));
    w.add_metadata(key("block_count"), MetadataValue::U32(p.n_layer as u32));
    w.add_metadata(
        key("feed_forward_length"),
        MetadataValue::U32(p.n_ff as u32),
    );
    w.add_metadata(
        key("attention.head_count"),
        MetadataValue::U32(p.n_head as u32),
    );
    w.add_metadata(
        key("attention.head_count_kv"),
        MetadataValue::U32(p.n_head_kv as u32),
    );
    w.add_metadata(
        key("attention.layer_norm_rms_epsilon"),
        MetadataValue::F32(1e-5),
    );
    w.add_metadata(key("rope.freq_base"), MetadataValue::F32(p.rope_theta));
    w.add_metadata(
        key("rope.dimension_count"),
        MetadataValue::U32((p.n_embd / p.n_head) as u32),
    );
    w.add_metadata(key("vocab_size"), MetadataValue::U32(p.n_vocab as u32));
    match &vocab_file {
        Some(v) => {
            let tokens = v
                .get("tokenizer.ggml.tokens")
                .and_then(|t| t.as_array())
                .map_or(0, |a| a.len());
            if tokens as u64 != p.n_vocab {
                bail!(
                    "--vocab-from has {tokens} tokens but preset {} needs {}",
                    p.name,
                    p.n_vocab
                );
            }
            for (k, val) in v
                .metadata()
                .iter()
                .filter(|(k, _)| k.starts_with("tokenizer."))
            {
                w.add_metadata(k.clone(), val.clone());
            }
        }
        None => {
            w.add_metadata("tokenizer.ggml.model", MetadataValue::String("none".into()));
        }
    }

    let mut rng = SplitMix(args.seed);
    let f16_bytes = |rng: &mut SplitMix, n: u64, scale: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|_| f32_to_f16_bits(rng.unit() * scale).to_le_bytes())
            .collect()
    };
    let f32_bytes = |rng: &mut SplitMix, n: u64| -> Vec<u8> {
        (0..n)
            .flat_map(|_| (1.0 + 0.1 * rng.unit()).to_le_bytes())
            .collect()
    };
    let head_dim = p.n_embd / p.n_head;
    let kv = head_dim * p.n_head_kv;
    eprintln!(
        "synthesising {} ({}): {} layers",
        p.name, args.ty, p.n_layer
    );
    w.add_tensor(
        "token_embd.weight",
        &[p.n_embd, p.n_vocab],
        GgmlType::F16,
        f16_bytes(&mut rng, p.n_embd * p.n_vocab, 0.5),
    );
    w.add_tensor(
        "output_norm.weight",
        &[p.n_embd],
        GgmlType::F32,
        f32_bytes(&mut rng, p.n_embd),
    );
    for l in 0..p.n_layer {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        w.add_tensor(
            name("attn_norm"),
            &[p.n_embd],
            GgmlType::F32,
            f32_bytes(&mut rng, p.n_embd),
        );
        w.add_tensor(
            name("attn_sub_norm"),
            &[p.n_embd],
            GgmlType::F32,
            f32_bytes(&mut rng, p.n_embd),
        );
        w.add_tensor(
            name("ffn_norm"),
            &[p.n_embd],
            GgmlType::F32,
            f32_bytes(&mut rng, p.n_embd),
        );
        w.add_tensor(
            name("ffn_sub_norm"),
            &[p.n_ff],
            GgmlType::F32,
            f32_bytes(&mut rng, p.n_ff),
        );
        for (t, cols, rows) in [
            ("attn_q", p.n_embd, p.n_embd),
            ("attn_k", p.n_embd, kv),
            ("attn_v", p.n_embd, kv),
            ("attn_output", p.n_embd, p.n_embd),
            ("ffn_gate", p.n_embd, p.n_ff),
            ("ffn_up", p.n_embd, p.n_ff),
            ("ffn_down", p.n_ff, p.n_embd),
        ] {
            let (r, c) = (rows as usize, cols as usize);
            // f16-representable, so every format stores the same scale exactly.
            let scale = half::f16::from_f32(0.02 + 0.01 * rng.unit().abs()).to_f32();
            let scales = match ty {
                GgmlType::I2S => TernaryScales::PerTensor(scale),
                _ => TernaryScales::PerBlock {
                    block_len: 256,
                    scales: vec![scale; r * c / 256],
                },
            };
            let tensor = TernaryTensor::new(r, c, rng.trits(r * c), scales)?;
            let bytes =
                encode_ternary(&tensor, ty).with_context(|| format!("encoding {}", name(t)))?;
            w.add_tensor(name(t), &[cols, rows], ty, bytes);
        }
    }
    let n = w
        .write_file(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("wrote {} ({:.1} MB)", args.output.display(), n as f64 / 1e6);
    Ok(())
}
