//! The model's logits do not depend on the instruction set the kernels run on, nor on the other
//! sequences batched with a sequence: the same files evaluated with `BITNET_ISA` forced to each
//! tier this CPU has give bit-identical logits (prefill and one token at a time; the ternary
//! tiny-b158 in I2_S and TQ2_0, with its F16 head as stored and requantized to Q8_0 and Q6_K,
//! with Q8_0 and BF16 KV caches, and SmolLM2-135M, whose Q4_1 weights run on the int8 code
//! kernels and Q8_0 head on the Q8_0 kernels, with F16 and Q8_0 KV caches and with its head
//! requantized to Q6_K), and in every tier
//! `Model::forward_batch` gives each segment exactly the logits `Model::forward` gives it alone,
//! also with the 2-bit copies a model loaded for batched decode keeps.
//! The ISA is chosen once per process, so each tier runs in a child process of this test binary.

use std::process::Command;

use bitnet_gguf::GgufFile;
use bitnet_kernels::ternary::{Scales, TernaryLayout};
use bitnet_kernels::{Isa, ThreadPool};
use bitnet_model::{BatchSegment, HeadFormat, KvPrecision, LoadOptions, Model};

/// FNV-1a over the bit patterns of the logits.
fn digest(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn open(path: std::path::PathBuf, head: HeadFormat, cache_type: KvPrecision) -> Model {
    open_with(
        path,
        LoadOptions {
            head,
            cache_type,
            ..Default::default()
        },
    )
}

fn open_with(path: std::path::PathBuf, options: LoadOptions) -> Model {
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Model::load_with(&file, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Token ids below `vocab`, spread over it.
fn tokens(count: usize, vocab: usize, salt: usize) -> Vec<u32> {
    (0..count)
        .map(|i| ((i * 7919 + salt * 104_729 + 1) % vocab) as u32)
        .collect()
}

/// The logits of a prefill of `prompt` tokens (every row) followed by `decode` single-token
/// steps.
fn prefill_then_decode(model: &Model, prompt: usize, decode: usize, pool: &ThreadPool) -> Vec<f32> {
    let ids = tokens(prompt + decode, model.n_vocab(), 0);
    let mut cache = model.new_cache(prompt + decode);
    let mut logits = model.forward(&ids[..prompt], &mut cache, 0, pool).unwrap();
    for &id in &ids[prompt..] {
        logits.extend(model.forward(&[id], &mut cache, 0, pool).unwrap());
    }
    logits
}

/// Runs three sequences batched in one `forward_batch` — a 9-token prompt, a one-token decode
/// step after a 4-token history, a 3-token chunk after a 2-token history — and asserts each
/// gets exactly the logits of `forward` alone on a copy of its cache. Returns them all.
fn batched_equals_alone(model: &Model, pool: &ThreadPool) -> Vec<f32> {
    let vocab = model.n_vocab();
    // (history, new tokens, logits_from)
    let plan = [(0usize, 9usize, 0usize), (4, 1, 0), (2, 3, 1)];
    let mut caches = Vec::new();
    let mut news = Vec::new();
    for (s, &(history, new, _)) in plan.iter().enumerate() {
        let ids = tokens(history + new, vocab, s + 1);
        let mut cache = model.new_cache(history + new);
        if history > 0 {
            model
                .forward(&ids[..history], &mut cache, history - 1, pool)
                .unwrap();
        }
        caches.push(cache);
        news.push(ids[history..].to_vec());
    }
    let alone: Vec<Vec<f32>> = caches
        .iter()
        .zip(&news)
        .zip(&plan)
        .map(|((cache, ids), &(_, _, from))| {
            model.forward(ids, &mut cache.clone(), from, pool).unwrap()
        })
        .collect();
    let mut segments: Vec<BatchSegment> = caches
        .iter_mut()
        .zip(&news)
        .zip(&plan)
        .map(|((cache, ids), &(_, _, from))| BatchSegment {
            tokens: ids,
            cache,
            logits_from: from,
        })
        .collect();
    let batched = model.forward_batch(&mut segments, pool).unwrap();
    assert_eq!(batched.len(), plan.len());
    for (s, (b, a)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(b.len(), a.len(), "segment {s}: logits count");
        assert!(
            bits(b) == bits(a),
            "segment {s}: batched logits differ from the sequence alone"
        );
    }
    batched.concat()
}

#[test]
#[ignore = "run by logits_are_identical_on_every_isa in a child process"]
fn print_logits_digest_under_forced_isa() {
    let pool = ThreadPool::new(2);
    let tiny = [
        (
            "i2_s",
            "tiny-b158/gguf/tiny-b158-i2_s.gguf",
            HeadFormat::AsStored,
        ),
        (
            "tq2_0",
            "tiny-b158/gguf/tiny-b158-tq2_0.gguf",
            HeadFormat::AsStored,
        ),
        (
            "i2_s+q8_0-head",
            "tiny-b158/gguf/tiny-b158-i2_s.gguf",
            HeadFormat::Q8_0,
        ),
        (
            "i2_s+q6_k-head",
            "tiny-b158/gguf/tiny-b158-i2_s.gguf",
            HeadFormat::Q6K,
        ),
    ];
    let caches = [KvPrecision::F16, KvPrecision::Q8_0, KvPrecision::Bf16];
    let runs = tiny
        .iter()
        .map(|&(name, file, head)| (name.to_string(), file, head, KvPrecision::F16))
        .chain(caches[1..].iter().map(|&c| {
            let name = format!("i2_s+{}-cache", c.name());
            (
                name,
                "tiny-b158/gguf/tiny-b158-i2_s.gguf",
                HeadFormat::AsStored,
                c,
            )
        }));
    for (name, file, head, cache_type) in runs {
        let model = open(bitnet_testdata::oracle(file), head, cache_type);
        let logits = prefill_then_decode(&model, 32, 8, &pool);
        println!("LOGITS {name} {:016x} {}", digest(&logits), logits.len());
        let batched = batched_equals_alone(&model, &pool);
        println!("BATCHED {name} {:016x} {}", digest(&batched), batched.len());
    }
    // Loaded for batched decode, where the ternary matrices are trit5 (AVX-512 VBMI) they keep
    // 2-bit copies for the products of several tokens: the same logits, batched and alone.
    let i2_s = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let with_copies = open_with(
        i2_s.clone(),
        LoadOptions {
            batched_decode: true,
            ..Default::default()
        },
    );
    let trit5 = TernaryLayout::preferred(&Scales::PerTensor(1.0)) == TernaryLayout::Trit5;
    assert_eq!(with_copies.two_bit_copy_bytes() > 0, trit5);
    let plain = open(i2_s, HeadFormat::AsStored, KvPrecision::F16);
    assert_eq!(plain.two_bit_copy_bytes(), 0);
    assert_eq!(
        bits(&batched_equals_alone(&with_copies, &pool)),
        bits(&batched_equals_alone(&plain, &pool)),
        "the 2-bit copies changed the batched logits"
    );
    assert_eq!(
        bits(&prefill_then_decode(&with_copies, 32, 8, &pool)),
        bits(&prefill_then_decode(&plain, 32, 8, &pool)),
        "the 2-bit copies changed the prefill or decode logits"
    );
    for (cache_type, head) in [
        (KvPrecision::F16, HeadFormat::AsStored),
        (KvPrecision::Q8_0, HeadFormat::AsStored),
        (KvPrecision::F16, HeadFormat::Q6K),
    ] {
        let smol = open(bitnet_testdata::smollm2(), head, cache_type);
        let name = format!("smollm2+{}-cache+{}-head", cache_type.name(), head.name());
        let logits = prefill_then_decode(&smol, 10, 2, &pool);
        println!("LOGITS {name} {:016x} {}", digest(&logits), logits.len());
        let batched = batched_equals_alone(&smol, &pool);
        println!("BATCHED {name} {:016x} {}", digest(&batched), batched.len());
    }
    println!("ISA {}", bitnet_kernels::active_isa().name());
}

#[test]
fn logits_are_identical_on_every_isa() {
    let exe = std::env::current_exe().unwrap();
    let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
    for isa in Isa::supported_for_tests() {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "print_logits_digest_under_forced_isa",
                "--ignored",
                "--nocapture",
            ])
            .env("BITNET_ISA", isa.name())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            isa.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let active = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ISA "))
            .unwrap_or_else(|| panic!("no ISA line: {stdout}"));
        assert_eq!(active, isa.name(), "BITNET_ISA was not honoured");
        let digests: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with("LOGITS ") || l.starts_with("BATCHED "))
            .map(str::to_string)
            .collect();
        assert_eq!(digests.len(), 18, "{stdout}");
        seen.push((isa.name(), digests));
    }
    assert!(
        seen.len() >= 2,
        "only one ISA on this CPU, nothing to compare: {seen:?}"
    );
    for pair in seen.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].1,
            "logits differ between {} and {}",
            pair[0].0, pair[1].0
        );
    }
}
