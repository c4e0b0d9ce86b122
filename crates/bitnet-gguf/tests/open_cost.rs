//! Opening a GGUF parses its header and maps the file; it does not read the tensor data. Measured
//! as work done, not time: the growth of this process's resident set while the real models are
//! opened (their tensor data are 98% and 97% of their bytes) must stay within a small multiple of
//! the header's size (the parsed metadata: Gemma-3's 262,144-token vocabulary as strings and floats;
//! measured 5.5x and 5.7x the header). This file holds one test so that nothing else runs in the process meanwhile.

use bitnet_gguf::GgufFile;

#[test]
fn opening_reads_the_header_not_the_tensor_data() {
    for path in [bitnet_testdata::smollm2(), bitnet_testdata::gemma3()] {
        let before = bitnet_testdata::resident_bytes();
        let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let grown = bitnet_testdata::resident_bytes().saturating_sub(before);
        let header = f.data_offset();
        let data: u64 = f.tensors().iter().map(|t| t.n_bytes).sum();
        eprintln!(
            "{}: header {header} B, tensor data {data} B, resident set grew {grown} B",
            path.display()
        );
        let bound = 8 * header + (4 << 20);
        assert!(
            data > 3 * bound,
            "{}: the bound proves nothing unless the tensor data is much larger",
            path.display()
        );
        assert!(
            grown <= bound,
            "{}: opening made {grown} B resident (bound {bound} B: 8 x header {header} B + 4 MiB)",
            path.display()
        );
        drop(f);
    }
}
