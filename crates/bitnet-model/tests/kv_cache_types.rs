//! KV cache element types, snapshots and prefix copies on tiny-b158: a Q8_0 cache takes 17/32 of
//! an F16 cache's memory (what the server's startup log and `/metrics` report), every type keeps
//! the F16 cache's top token on most rows, and a snapshot put back into another cache (or a prefix
//! copied from one cache into another) continues with the bits of the original cache.

use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::{KvPrecision, LoadOptions, Model};

fn tiny(cache_type: KvPrecision) -> Model {
    let path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let file = GgufFile::open(path).unwrap();
    let options = LoadOptions {
        cache_type,
        ..Default::default()
    };
    Model::load_with(&file, options).unwrap()
}

fn ids(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

#[test]
fn q8_0_halves_the_cache_and_keeps_the_logits_close() {
    let pool = ThreadPool::new(2);
    let f16 = tiny(KvPrecision::F16);
    let tokens = ids(40, f16.n_vocab());
    let reference = f16
        .forward(&tokens, &mut f16.new_cache(64), 0, &pool)
        .unwrap();
    let f16_bytes = f16.new_cache(64).memory_bytes();
    assert_eq!(f16_bytes, KvPrecision::F16.cache_bytes(f16.config(), 64));
    for cache_type in [KvPrecision::Q8_0, KvPrecision::Bf16] {
        let model = tiny(cache_type);
        let cache = model.new_cache(64);
        assert_eq!(cache.precision(), cache_type);
        assert_eq!(
            cache.memory_bytes(),
            cache_type.cache_bytes(model.config(), 64)
        );
        if cache_type == KvPrecision::Q8_0 {
            assert_eq!(cache.memory_bytes() * 32, f16_bytes * 17);
        }
        let logits = model
            .forward(&tokens, &mut cache.clone(), 0, &pool)
            .unwrap();
        let worst = logits
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // Same top token on most rows (tiny-b158 has many near ties; the perplexity cost on real
        // models is in docs/PERFORMANCE.md); the values differ (the cache is not F16).
        let vocab = model.n_vocab();
        let argmax = |row: &[f32]| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap()
        };
        let agree = logits
            .chunks_exact(vocab)
            .zip(reference.chunks_exact(vocab))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        assert!(
            worst > 0.0 && agree >= 32,
            "{}: worst {worst}, top token agrees on {agree}/40",
            cache_type.name()
        );
    }
}

#[test]
fn a_restored_snapshot_continues_with_the_same_bits() {
    let pool = ThreadPool::new(2);
    for cache_type in [KvPrecision::F16, KvPrecision::Q8_0] {
        let model = tiny(cache_type);
        let tokens = ids(30, model.n_vocab());
        let mut original = model.new_cache(64);
        model
            .forward(&tokens[..20], &mut original, 19, &pool)
            .unwrap();
        let snapshot = original.snapshot(12);
        assert_eq!(snapshot.len(), 12);
        assert!(snapshot.memory_bytes() < original.memory_bytes());
        // A cache that held something else gets the snapshot's 12 positions.
        let mut other = model.new_cache(64);
        model
            .forward(&tokens[5..25], &mut other, 19, &pool)
            .unwrap();
        other.restore(&snapshot).unwrap();
        assert_eq!(other.len(), 12);
        // Or straight from the original cache (`copy_prefix`, what a request sharing the prompt
        // of a sequence in flight takes), into a cache that held something else too.
        let mut copied = model.new_cache(64);
        model
            .forward(&tokens[3..10], &mut copied, 6, &pool)
            .unwrap();
        copied.copy_prefix(&original, 12).unwrap();
        assert_eq!(copied.len(), 12);
        // A prefix longer than the cache holds is refused.
        assert!(model.new_cache(8).copy_prefix(&original, 12).is_err());
        original.truncate(12);
        let want = model
            .forward(&tokens[12..30], &mut original, 0, &pool)
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for cache in [&mut other, &mut copied] {
            let got = model.forward(&tokens[12..30], cache, 0, &pool).unwrap();
            assert_eq!(bits(&got), bits(&want));
        }
        // A snapshot or cache of another element type is refused.
        let f32_cache = model.new_cache_with(64, KvPrecision::F32).unwrap();
        if cache_type != KvPrecision::F32 {
            assert!(other.restore(&f32_cache.snapshot(0)).is_err());
            assert!(other.copy_prefix(&f32_cache, 0).is_err());
        }
    }
}
