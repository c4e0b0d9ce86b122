//! Releasing a tensor's mapped pages takes them out of the process's resident set (what keeps
//! a loaded model from holding the mapped file and its own copy of the weights at once), and
//! the bytes read back unchanged afterwards.

use bitnet_gguf::GgufFile;

/// The tests measure this process's resident set: one at a time.
static RESIDENT_SET: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn released_tensor_pages_leave_the_resident_set() {
    let _one_at_a_time = RESIDENT_SET.lock().unwrap_or_else(|p| p.into_inner());
    let file = GgufFile::open(bitnet_testdata::smollm2()).unwrap();
    let touch = |f: &GgufFile| -> u64 {
        f.tensors()
            .iter()
            .map(|t| {
                f.tensor_data(t)
                    .iter()
                    .step_by(512)
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
            })
            .sum()
    };
    let data_bytes: u64 = file.tensors().iter().map(|t| t.n_bytes).sum();
    let checksum = touch(&file);
    let before = bitnet_testdata::resident_bytes();
    for t in file.tensors() {
        file.release_tensor_pages(t);
    }
    let after = bitnet_testdata::resident_bytes();
    assert!(
        before - after.min(before) > data_bytes * 9 / 10,
        "released {} of {} mapped bytes",
        before.saturating_sub(after),
        data_bytes
    );
    // The bytes are still the file's.
    assert_eq!(touch(&file), checksum);
}

#[test]
fn releasing_part_of_a_tensor_leaves_the_rest_resident() {
    let _one_at_a_time = RESIDENT_SET.lock().unwrap_or_else(|p| p.into_inner());
    let file = GgufFile::open(bitnet_testdata::smollm2()).unwrap();
    // The largest tensor (SmolLM2's 28 MB embedding table), touched whole, then its first half
    // released.
    let t = file.tensors().iter().max_by_key(|t| t.n_bytes).unwrap();
    let data = file.tensor_data(t);
    let sum = |bytes: &[u8]| {
        bytes
            .iter()
            .step_by(512)
            .map(|&b| u64::from(b))
            .sum::<u64>()
    };
    let checksum = sum(data);
    let before = bitnet_testdata::resident_bytes();
    let half = data.len() / 2;
    file.release_tensor_bytes(t, 0..half);
    let released = before.saturating_sub(bitnet_testdata::resident_bytes());
    assert!(
        released > half as u64 * 9 / 10 && released < half as u64 + (1 << 20),
        "released {released} bytes for a {half}-byte range"
    );
    assert_eq!(sum(data), checksum);
}
