//! Shared helpers for the reference tests: the splitmix64 stream and FNV-1a digests that
//! tools/gen_quant_refs.py uses, and the parser of its data files.

#![allow(dead_code)]

use bitnet_quant::GgmlType;

pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// `n` outputs of splitmix64 started at `seed` (state advanced before each output).
pub fn splitmix64(seed: u64, n: usize) -> Vec<u64> {
    (1..=n as u64)
        .map(|k| {
            let mut z = seed.wrapping_add(k.wrapping_mul(GAMMA));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// The first `n` bytes of the little-endian splitmix64 stream.
pub fn stream_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = splitmix64(seed, n.div_ceil(8))
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    bytes.truncate(n);
    bytes
}

pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// Digest of f32 values with every NaN replaced by 0x7fc00000 (NaN payloads are not compared).
pub fn f32_digest(values: &[f32]) -> u64 {
    fnv1a(values.iter().flat_map(|v| {
        let bits = if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() };
        bits.to_le_bytes()
    }))
}

/// One reference file of tools/gen_quant_refs.py.
pub struct RefFile {
    pub block_len: usize,
    pub type_size: usize,
    pub seed: u64,
    pub n_random: usize,
    pub n_special: usize,
    pub special: Vec<u8>,
    pub digests: Vec<u64>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn read_ref(name: &str, magic: &[u8; 4]) -> RefFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let b = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing {} ({e}): run tools/gen_quant_refs.py",
            path.display()
        )
    });
    assert_eq!(&b[0..4], magic, "{name}: bad magic");
    assert_eq!(u32_at(&b, 4), 1, "{name}: version");
    let block_len = u32_at(&b, 8) as usize;
    let type_size = u32_at(&b, 12) as usize;
    let seed = u64::from_le_bytes(b[16..24].try_into().unwrap());
    let n_random = u32_at(&b, 24) as usize;
    let n_special = u32_at(&b, 28) as usize;
    let special_len = n_special
        * if magic == b"BQDQ" {
            type_size
        } else {
            block_len * 4
        };
    let special = b[32..32 + special_len].to_vec();
    let digests: Vec<u64> = b[32 + special_len..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(digests.len(), n_random + n_special, "{name}: digest count");
    RefFile {
        block_len,
        type_size,
        seed,
        n_random,
        n_special,
        special,
        digests,
    }
}

/// Types by the names gguf-py and the reference files use.
pub fn type_named(name: &str) -> GgmlType {
    use GgmlType as T;
    [
        T::F32,
        T::F16,
        T::BF16,
        T::Q4_0,
        T::Q4_1,
        T::Q5_0,
        T::Q5_1,
        T::Q8_0,
        T::Q2K,
        T::Q3K,
        T::Q4K,
        T::Q5K,
        T::Q6K,
        T::Q8K,
        T::IQ2S,
        T::TQ1_0,
        T::TQ2_0,
    ]
    .into_iter()
    .find(|t| t.name() == name)
    .unwrap_or_else(|| panic!("unknown type {name}"))
}

/// The random f32 blocks of a quantization reference (same exact float operations as the
/// generator): per block a power-of-two scale 2^e, e in -40..=30, and a value mode.
pub fn random_quant_inputs(seed: u64, n_blocks: usize, block_len: usize) -> Vec<f32> {
    let w = splitmix64(seed, n_blocks * (block_len + 2));
    let mut out = Vec::with_capacity(n_blocks * block_len);
    for blk in w.chunks_exact(block_len + 2) {
        let e = (blk[0] % 71) as i32 - 40;
        let mode = blk[1] % 4;
        let scale = f32::from_bits(((127 + e) as u32) << 23);
        for &u in &blk[2..] {
            let k = (u >> 40) as i64;
            let uniform = k as f32 * f32::from_bits((127 - 23) << 23) - 1.0;
            let v = match mode {
                0 => {
                    if (u >> 8) % 3 == 0 {
                        0.0
                    } else {
                        uniform
                    }
                }
                1 => ((k % 3) - 1) as f32,
                2 => ((k % 17) - 8) as f32 * 0.125,
                _ => uniform,
            };
            out.push(v * scale);
        }
    }
    out
}

/// Block indices whose digests differ, as a short report ("" when all agree).
pub fn mismatch_report(got: &[u64], want: &[u64], n_random: usize) -> String {
    let bad: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    if bad.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = bad
        .iter()
        .take(8)
        .map(|&i| {
            if i < n_random {
                format!("random #{i}")
            } else {
                format!("special #{}", i - n_random)
            }
        })
        .collect();
    format!(
        "{} of {} blocks differ: {}",
        bad.len(),
        want.len(),
        shown.join(", ")
    )
}
