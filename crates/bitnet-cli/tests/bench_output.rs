//! `bitnet bench` on the shipped model: one row per test in llama-bench's columns, the JSON's
//! fields (with the CPU time stolen by a hypervisor where `/proc/stat` has it), and a markdown
//! stdout that holds only the table (the scripts in `tools/bench/` read its rows; notes go to
//! stderr).

use std::process::{Command, Output};

use serde_json::Value;

fn bench(extra: &[&str]) -> Output {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/bitnet-b158-kjv-29m.gguf"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["bench", "-m", model, "-p", "16", "-n", "8", "-b", "1,2"])
        .args(["-r", "2", "-t", "2"])
        .args(extra)
        .output()
        .expect("run bitnet bench");
    assert!(
        out.status.success(),
        "bitnet bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether this machine's kernel reports steal time (the aggregate `cpu` line has 8 or more
/// counters), read here independently of the code under test.
fn proc_stat_has_steal() -> bool {
    std::fs::read_to_string("/proc/stat").is_ok_and(|stat| {
        stat.lines()
            .next()
            .is_some_and(|line| line.starts_with("cpu ") && line.split_whitespace().count() > 8)
    })
}

#[test]
fn json_has_a_row_per_test_with_its_samples_and_the_stolen_share() {
    let out = bench(&["--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = rows.as_array().expect("an array of rows");
    let tests: Vec<&str> = rows.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, ["pp16", "tg8", "tg8 x2"]);
    for row in rows {
        assert_eq!(row["n_threads"], 2);
        let samples = row["samples_ts"].as_array().unwrap();
        assert_eq!(samples.len(), 2, "one sample per repetition: {row}");
        assert!(samples.iter().all(|s| s.as_f64().unwrap() > 0.0), "{row}");
        let steal = &row["cpu_steal_percent"];
        if proc_stat_has_steal() {
            let percent = steal
                .as_f64()
                .unwrap_or_else(|| panic!("no steal figure: {row}"));
            assert!((0.0..=100.0).contains(&percent), "{row}");
        } else {
            assert!(steal.is_null(), "{row}");
        }
    }
}

#[test]
fn markdown_stdout_is_only_the_table_and_the_steal_note_goes_to_stderr() {
    let out = bench(&[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2 + 3, "header, rule and 3 rows:\n{stdout}");
    assert!(lines.iter().all(|l| l.starts_with('|')), "{stdout}");
    for (line, test) in lines[2..].iter().zip(["pp16", "tg8", "tg8 x2"]) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells[6], test, "{line}");
        let rate: f64 = cells[7].split(' ').next().unwrap().parse().unwrap();
        assert!(rate > 0.0, "{line}");
    }
    let stderr = String::from_utf8(out.stderr).unwrap();
    if proc_stat_has_steal() {
        let note = stderr
            .lines()
            .find(|l| l.starts_with("CPU time stolen by the hypervisor"))
            .unwrap_or_else(|| panic!("no steal note on stderr:\n{stderr}"));
        for test in ["pp16 ", "tg8 ", "tg8 x2 "] {
            assert!(note.contains(test), "{note}");
        }
    }
}
