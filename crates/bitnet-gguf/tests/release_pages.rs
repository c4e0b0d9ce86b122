//! Releasing a tensor's mapped pages takes them out of the process's resident set (what keeps
//! a loaded model from holding the mapped file and its own copy of the weights at once), and
//! the bytes read back unchanged afterwards.

use bitnet_gguf::GgufFile;

/// Resident pages of this process, in bytes (Linux `/proc/self/statm`, second field).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn released_tensor_pages_leave_the_resident_set() {
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
    let before = resident_bytes();
    for t in file.tensors() {
        file.release_tensor_pages(t);
    }
    let after = resident_bytes();
    assert!(
        before - after.min(before) > data_bytes * 9 / 10,
        "released {} of {} mapped bytes",
        before.saturating_sub(after),
        data_bytes
    );
    // The bytes are still the file's.
    assert_eq!(touch(&file), checksum);
}
