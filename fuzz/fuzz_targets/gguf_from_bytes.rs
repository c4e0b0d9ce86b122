//! Fuzz target: `GgufFile::from_bytes` on arbitrary bytes, then every accessor over all metadata
//! and all tensor data. Any panic, overflow or out-of-bounds access is a bug; errors are fine.
#![no_main]

use bitnet_gguf::{GgufFile, GgufWriter, MetadataValue};
use libfuzzer_sys::fuzz_target;

fn walk(v: &MetadataValue) -> usize {
    let _ = (
        v.as_str(),
        v.as_u64(),
        v.as_i64(),
        v.as_f32(),
        v.as_bool(),
        v.type_name(),
    );
    v.as_array().map_or(1, |items| items.iter().map(walk).sum())
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut n = 0;
    for (key, value) in file.metadata() {
        // Same entry (compared by address: a NaN value is not equal to itself).
        assert!(file.get(key).is_some_and(|v| std::ptr::eq(v, value)));
        n += walk(value);
    }
    let _ = (
        file.architecture(),
        file.alignment(),
        file.version(),
        file.data_offset(),
    );
    let mut sum = 0u64;
    for t in file.tensors() {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes);
        assert_eq!(file.tensor(&t.name), Some(t));
        sum = sum.wrapping_add(bytes.iter().map(|&b| u64::from(b)).sum::<u64>());
    }
    // What was read must be writable and read back to the same content. (Skipped for huge
    // alignments: a legal `general.alignment` of 2^31 makes the rewrite pad gigabytes.)
    if file.alignment() > 4096 {
        return;
    }
    if let Ok(bytes) = GgufWriter::from_file(&file).to_bytes() {
        let again = match GgufFile::from_bytes(bytes) {
            Ok(f) => f,
            // Packing tensors back to back can make a small id-36/39 tensor fit two types
            // exactly where the original's gap left only the default: a genuine ambiguity.
            Err(e) if e.kind() == "AmbiguousType" => return,
            Err(e) => panic!("rewritten file does not parse: {e}"),
        };
        assert_eq!(again.metadata().len(), file.metadata().len());
        assert_eq!(again.tensors().len(), file.tensors().len());
        for (a, b) in again.tensors().iter().zip(file.tensors()) {
            assert_eq!(again.tensor_data(a), file.tensor_data(b));
        }
    }
    std::hint::black_box((n, sum));
});
