//! `--device` end to end on adapter `gpu:0` (in CI: Mesa lavapipe): `bitnet devices` lists it,
//! `bitnet run --device gpu` prints what the CPU prints, bad choices are refused with the reason.
//! No GPU adapter fails these tests; nothing is skipped.

use std::process::{Command, Output};

fn bitnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .output()
        .expect("running bitnet")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn devices_lists_a_gpu_adapter_with_its_limits() {
    let out = bitnet(&["devices"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("gpu:0: "),
        "no GPU adapter listed (without a GPU: install Mesa lavapipe with \
         scripts/install-test-tools.sh):\n{listing}"
    );
    assert!(listing.contains("storage binding"), "{listing}");
    let json = bitnet(&["devices", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert!(
        list[0]["limits"]["max_storage_buffer_binding_size"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn run_on_the_gpu_prints_what_the_cpu_prints() {
    for prompt in ["In the beginning", "And the LORD said unto Moses,"] {
        let cpu = bitnet(&["run", "--device", "cpu", "-n", "24", "-p", prompt]);
        let gpu = bitnet(&["run", "--device", "gpu", "-n", "24", "-p", prompt]);
        assert!(cpu.status.success(), "{}", text(&cpu.stderr));
        assert!(gpu.status.success(), "{}", text(&gpu.stderr));
        assert!(
            text(&gpu.stderr).contains("device gpu:0: "),
            "{}",
            text(&gpu.stderr)
        );
        assert!(!cpu.stdout.is_empty());
        assert_eq!(text(&gpu.stdout), text(&cpu.stdout), "{prompt:?}");
    }
}

#[test]
fn bad_device_choices_are_refused_with_the_reason() {
    let out = bitnet(&["run", "--device", "tpu", "-p", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expected cpu, gpu or gpu:N"),
        "{}",
        text(&out.stderr)
    );
    let out = bitnet(&["run", "--device", "gpu:99", "-p", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("GPU adapter 99 requested"),
        "{}",
        text(&out.stderr)
    );
}
