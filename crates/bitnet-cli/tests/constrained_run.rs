//! `bitnet run --json-schema FILE` and `--grammar FILE` on SmolLM2: the printed answer is a
//! document valid against the schema (the repository's person schema) or a sentence of the
//! GBNF grammar, and a schema that cannot be enforced stops the command naming the keyword.

use std::path::PathBuf;
use std::process::Command;

fn repo_file(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .arg("run")
        .arg("-m")
        .arg(bitnet_testdata::smollm2())
        .args(["-t", "2"])
        .args(args)
        .output()
        .expect("running bitnet run");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn json_schema_output_is_a_valid_document() {
    let schema = repo_file("tools/structured/person.schema.json");
    let (ok, stdout, stderr) = run(&[
        "-p",
        "A user of a web site, as JSON:",
        "-n",
        "150",
        "--temp",
        "1.0",
        "--seed",
        "7",
        "--json-schema",
        schema.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let o = doc.as_object().unwrap();
    assert_eq!(o.len(), 5, "{doc}");
    assert!(["admin", "user", "guest"].contains(&o["role"].as_str().unwrap()));
    assert!((0..=120).contains(&o["age"].as_i64().unwrap()));
    assert!((10000..=99999).contains(&o["address"]["zip"].as_i64().unwrap()));
    assert!((1..=3).contains(&o["tags"].as_array().unwrap().len()));
}

#[test]
fn gbnf_grammar_output_is_a_sentence_of_the_grammar() {
    let grammar = repo_file("tools/structured/yes-no.gbnf");
    let (ok, stdout, stderr) = run(&[
        "-p",
        "Is the sky blue? Answer:",
        "-n",
        "60",
        "--temp",
        "0.8",
        "--grammar",
        grammar.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let text = stdout.trim_end_matches('\n');
    let rest = text
        .strip_prefix("yes, because ")
        .or_else(|| text.strip_prefix("no, because "))
        .unwrap_or_else(|| panic!("{text:?}"));
    let (reason, tail) = rest
        .split_once(". Confidence: ")
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!((3..=60).contains(&reason.len()), "{text:?}");
    assert!(
        reason.chars().all(|c| c.is_ascii_lowercase() || c == ' '),
        "{text:?}"
    );
    assert!(
        tail.len() == 3 && tail.ends_with("/9") && tail.as_bytes()[0].is_ascii_digit(),
        "{text:?}"
    );
}

#[test]
fn an_unenforceable_schema_is_refused_naming_the_keyword() {
    let dir = std::env::temp_dir().join(format!("bitnet-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unique.json");
    std::fs::write(&path, r#"{"type": "array", "uniqueItems": true}"#).unwrap();
    let (ok, _, stderr) = run(&[
        "-p",
        "x",
        "-n",
        "4",
        "--json-schema",
        path.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("uniqueItems"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
