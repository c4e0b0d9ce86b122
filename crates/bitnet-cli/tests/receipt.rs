//! Run receipts end to end: a real `bitnet run --receipt` on the tiny BitNet b1.58 model; its
//! figures are checked against references outside this code (coreutils `sha256sum` of the model
//! file and of the printed text, the file's size), it passes `bitnet verify-receipt -m`, and edited
//! copies each fail exactly the gate that covers the edit. `--strict` refuses a forced scalar path
//! on a SIMD CPU.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

const N_PREDICT: usize = 12;

fn model() -> PathBuf {
    bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf")
}

fn bitnet(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    cmd.args(args).env_remove("BITNET_ISA");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run bitnet")
}

fn sha256sum(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

struct RealRun {
    receipt_path: PathBuf,
    receipt: Value,
    stdout: String,
}

/// One real run with `--receipt`, shared by the tests.
fn real_run() -> &'static RealRun {
    static RUN: OnceLock<RealRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("receipt-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let receipt_path = dir.join(format!("run-{}.json", std::process::id()));
        let model = model();
        let n = N_PREDICT.to_string();
        let out = bitnet(
            &[
                "run",
                "-m",
                model.to_str().unwrap(),
                "-p",
                "Once upon a time",
                "-n",
                &n,
                "-t",
                "2",
                "--receipt",
                receipt_path.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "bitnet run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let receipt = serde_json::from_str(&std::fs::read_to_string(&receipt_path).unwrap())
            .expect("the receipt is JSON");
        RealRun {
            receipt_path,
            receipt,
            stdout: String::from_utf8(out.stdout).unwrap(),
        }
    })
}

fn verify(receipt: &Path, with_model: bool) -> (bool, String) {
    let model = model();
    let mut args = vec!["verify-receipt", receipt.to_str().unwrap()];
    if with_model {
        args.extend(["-m", model.to_str().unwrap()]);
    }
    let out = bitnet(&args, &[]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn receipt_records_what_ran() {
    let run = real_run();
    let r = &run.receipt;
    let model_bytes = std::fs::read(model()).unwrap();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["compute_path"], "real");
    assert_eq!(r["model"]["sha256"], sha256sum(&model_bytes).as_str());
    assert_eq!(r["model"]["file_bytes"], model_bytes.len() as u64);
    assert_eq!(r["model"]["architecture"], "bitnet-b1.58");
    assert_eq!(r["threads"], 2);
    // `bitnet run` prints the generated text followed by one newline.
    let text = run.stdout.strip_suffix('\n').unwrap();
    assert_eq!(r["output_sha256"], sha256sum(text.as_bytes()).as_str());
    // Greedy on this model does not stop early: it runs to the limit.
    assert_eq!(r["generated_tokens"], N_PREDICT as u64);
    assert_eq!(r["finish_reason"], "length");
    let kernels = r["kernels"].as_array().unwrap();
    assert!(
        kernels
            .iter()
            .any(|k| k.as_str().unwrap().starts_with("i2s_")),
        "an I2_S model must record a ternary kernel: {kernels:?}"
    );
    let isa = r["isa"].as_str().unwrap();
    assert!(
        kernels
            .iter()
            .all(|k| isa == "scalar" || !k.as_str().unwrap().contains("scalar")),
        "kernels {kernels:?} under isa {isa}"
    );
}

#[test]
fn real_receipt_passes_every_gate() {
    let run = real_run();
    for with_model in [false, true] {
        let (ok, out) = verify(&run.receipt_path, with_model);
        assert!(ok, "{out}");
        assert!(!out.contains("FAIL"), "{out}");
        for gate in [
            "schema_version",
            "compute_path",
            "kernels_recorded",
            "kernels_exist",
            "isa",
            "token_counts",
            "timings",
            "plausible_speed",
            "output_hash",
            "model_hash",
        ] {
            assert!(out.contains(&format!("PASS {gate}")), "{gate}: {out}");
        }
    }
}

/// Writes an edited copy of the real receipt and checks that exactly `gate` fails.
fn assert_edit_fails(name: &str, gate: &str, edit: impl FnOnce(&mut Value)) {
    let run = real_run();
    let mut edited = run.receipt.clone();
    edit(&mut edited);
    let path = run.receipt_path.with_extension(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let (ok, out) = verify(&path, true);
    assert!(!ok, "{name}: verify-receipt passed:\n{out}");
    let failed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(failed, [gate], "{name}:\n{out}");
}

#[test]
fn emptied_kernel_list_fails() {
    assert_edit_fails("no-kernels", "kernels_recorded", |r| {
        r["kernels"] = Value::Array(Vec::new());
    });
}

#[test]
fn kernel_this_build_lacks_fails() {
    assert_edit_fails("foreign-kernel", "kernels_exist", |r| {
        r["kernels"]
            .as_array_mut()
            .unwrap()
            .push("i2s_neon_dotprod_matvec".into());
    });
}

#[test]
fn inflated_tokens_per_second_fails() {
    assert_edit_fails("fast", "timings", |r| {
        let tps = r["decode_tokens_per_second"].as_f64().unwrap();
        r["decode_tokens_per_second"] = (tps * 10.0).into();
    });
}

#[test]
fn impossible_speed_fails() {
    // Consistent figures, but 1e6 times faster than measured: beyond 200 GB/s of weight reads.
    assert_edit_fails("impossible", "plausible_speed", |r| {
        let s = r["decode_seconds"].as_f64().unwrap();
        let tps = r["decode_tokens_per_second"].as_f64().unwrap();
        r["decode_seconds"] = (s / 1e6).into();
        r["decode_tokens_per_second"] = (tps * 1e6).into();
    });
}

#[test]
fn changed_model_hash_fails() {
    assert_edit_fails("other-model", "model_hash", |r| {
        let sha = r["model"]["sha256"].as_str().unwrap();
        let flipped = if sha.starts_with('0') { "1" } else { "0" };
        r["model"]["sha256"] = format!("{flipped}{}", &sha[1..]).into();
    });
}

#[test]
fn changed_compute_path_fails() {
    assert_edit_fails("mock", "compute_path", |r| {
        r["compute_path"] = "mock".into();
    });
}

#[test]
fn unknown_schema_version_fails() {
    assert_edit_fails("v99", "schema_version", |r| {
        r["schema_version"] = 99.into();
    });
}

#[test]
fn strict_refuses_forced_scalar_on_simd_cpu() {
    let model = model();
    let args = [
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "Hello",
        "-n",
        "2",
        "--strict",
    ];
    let simd = bitnet_kernels::Isa::best_supported() != bitnet_kernels::Isa::Scalar;
    let out = bitnet(&args, &[("BITNET_ISA", "scalar")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if simd {
        assert!(!out.status.success(), "--strict ran scalar: {stderr}");
        assert!(
            stderr.contains("--strict: BITNET_ISA forces the scalar kernels"),
            "{stderr}"
        );
        // Without --strict the same run degrades (and works).
        let out = bitnet(&args[..7], &[("BITNET_ISA", "scalar")]);
        assert!(out.status.success());
    } else {
        assert!(out.status.success(), "{stderr}");
    }
    // At the CPU's own tier, on a model whose metadata the engine reads entirely, --strict runs.
    let out = bitnet(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `BITNET_ISA` naming no tier, or a tier this CPU lacks, is refused by every run (with or
/// without --strict): the kernels would otherwise run another tier than the one asked for.
#[test]
fn a_bad_or_unsupported_isa_choice_is_refused() {
    let model = model();
    let args = [
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "Hello",
        "-n",
        "2",
    ];
    let out = bitnet(&args, &[("BITNET_ISA", "avx1024")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ran with BITNET_ISA=avx1024: {stderr}"
    );
    assert!(
        stderr.contains("BITNET_ISA=\"avx1024\"") && stderr.contains("set BITNET_ISA to one of"),
        "{stderr}"
    );
    let lacking = bitnet_kernels::Isa::ALL
        .into_iter()
        .find(|isa| !isa.is_supported())
        .expect("no CPU supports both the x86 tiers and NEON");
    let out = bitnet(&args, &[("BITNET_ISA", lacking.name())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ran with BITNET_ISA={lacking}: {stderr}"
    );
    assert!(stderr.contains("set BITNET_ISA to one of"), "{stderr}");
}

#[test]
fn strict_refuses_an_unread_arch_key() {
    let original = bitnet_gguf::GgufFile::open(model()).unwrap();
    let mut writer = bitnet_gguf::GgufWriter::from_file(&original);
    // A YaRN attention factor would change the math; this engine does not read it.
    writer.add_metadata(
        "bitnet-b1.58.rope.scaling.attn_factor",
        bitnet_gguf::MetadataValue::F32(2.0),
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("receipt-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("extra-key-{}.gguf", std::process::id()));
    writer.write_file(&path).unwrap();
    let args = [
        "run",
        "-m",
        path.to_str().unwrap(),
        "-p",
        "Hello",
        "-n",
        "2",
    ];
    let out = bitnet(&args, &[]);
    assert!(out.status.success(), "without --strict the key is ignored");
    let strict: Vec<&str> = args.iter().copied().chain(["--strict"]).collect();
    let out = bitnet(&strict, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--strict accepted the key: {stderr}");
    assert!(
        stderr.contains("bitnet-b1.58.rope.scaling.attn_factor"),
        "{stderr}"
    );
}

fn chat(extra: &[&str], input: &str) -> Output {
    let model = model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["chat", "-m", model.to_str().unwrap(), "-n", "4"])
        .args(extra)
        .env_remove("BITNET_ISA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bitnet chat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn strict_chat_refuses_a_model_without_a_template() {
    // The tiny model has no tokenizer.chat_template.
    let out = chat(&["--strict"], "hello\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("has no chat template"), "{stderr}");
    // Naming a template satisfies --strict.
    let out = chat(&["--strict", "--template", "chatml"], "hello\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chat_session_receipt_sums_the_answers_and_passes() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("receipt-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("chat-{}.json", std::process::id()));
    let out = chat(
        &["--receipt", path.to_str().unwrap()],
        "hello\nhow are you?\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Two answers of at most 4 tokens each; greedy on this model runs to the limit.
    assert_eq!(r["generated_tokens"], 8);
    let (ok, report) = verify(&path, true);
    assert!(ok, "{report}");
}
