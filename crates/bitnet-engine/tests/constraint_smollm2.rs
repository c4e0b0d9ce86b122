//! Constrained decoding on SmolLM2's real vocabulary (the token trie built from the GGUF file):
//! random walks through the grammar's masks keep the text a valid JSON prefix and end in a
//! document that satisfies the schema; the model itself, sampled at temperature 1 under the
//! schema, gives valid documents; regex, Lark and GBNF constraints hold; schemas with keywords
//! that cannot be enforced are refused naming them.

use bitnet_engine::{
    generate, ConstraintCompiler, ConstraintError, ConstraintSpec, FinishReason, GenerateRequest,
    SamplingParams,
};
use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use bitnet_tokenizer::chat::{ChatTemplate, Message};
use bitnet_tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf(&GgufFile::open(bitnet_testdata::smollm2()).unwrap()).unwrap()
}

/// Nested objects, arrays, enums, integer bounds, required fields, bounded strings (the schema
/// the server tests and `bitnet bench --json-schema` use).
fn schema() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/structured/person.schema.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The schema's rules, checked by hand on a parsed document.
fn check_document(doc: &Value) {
    let o = doc.as_object().expect("an object");
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    for k in ["name", "age", "role", "tags", "address"] {
        assert!(o.contains_key(k), "missing {k}: {doc}");
    }
    assert_eq!(keys.len(), 5, "extra keys: {doc}");
    let name = o["name"].as_str().unwrap();
    assert!((1..=16).contains(&name.chars().count()), "{doc}");
    let age = o["age"].as_i64().unwrap();
    assert!((0..=120).contains(&age), "{doc}");
    assert!(["admin", "user", "guest"].contains(&o["role"].as_str().unwrap()));
    let tags = o["tags"].as_array().unwrap();
    assert!((1..=3).contains(&tags.len()), "{doc}");
    assert!(tags
        .iter()
        .all(|t| t.as_str().unwrap().chars().count() <= 10));
    let address = o["address"].as_object().unwrap();
    assert_eq!(address.len(), 2, "{doc}");
    assert!(address["city"].as_str().unwrap().chars().count() <= 20);
    assert!((10000..=99999).contains(&address["zip"].as_i64().unwrap()));
}

/// Whether `text` can still become a JSON document (serde_json stops at the end of input, not
/// at a syntax error).
fn is_json_prefix(text: &str) -> bool {
    match serde_json::from_str::<Value>(text) {
        Ok(_) => true,
        Err(e) => e.is_eof(),
    }
}

#[test]
fn random_walks_through_the_mask_stay_valid_json() {
    let tokenizer = tokenizer();
    let compiler = ConstraintCompiler::new(&tokenizer).unwrap();
    let end = tokenizer.end_of_generation().to_vec();
    for seed in 0..8u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut constraint = compiler
            .compile(&ConstraintSpec::JsonSchema(schema()))
            .unwrap();
        let mut bytes = Vec::new();
        let mut ended = false;
        for _ in 0..400 {
            let mask = constraint.mask().unwrap();
            let allowed: Vec<u32> = (0..tokenizer.vocab_size() as u32)
                .filter(|&t| mask.allows(t))
                .collect();
            assert!(!allowed.is_empty());
            // Half the time the shortest allowed continuation, so walks finish.
            let token = if rng.gen_bool(0.5) {
                *allowed
                    .iter()
                    .min_by_key(|&&t| tokenizer.token_bytes(t, false).unwrap().len())
                    .unwrap()
            } else {
                allowed[rng.gen_range(0..allowed.len())]
            };
            constraint.consume(token).unwrap();
            if end.contains(&token) {
                ended = true;
                break;
            }
            bytes.extend(tokenizer.token_bytes(token, false).unwrap());
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert!(
                    is_json_prefix(text),
                    "seed {seed}: not a JSON prefix: {text}"
                );
            }
            // The grammar is complete and allows nothing more: the sequence ends here.
            if constraint.is_stopped() {
                ended = true;
                break;
            }
        }
        assert!(ended, "seed {seed}: the walk did not finish");
        let text = String::from_utf8(bytes).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
        check_document(&doc);
    }
}

#[test]
fn the_model_sampled_under_a_schema_gives_valid_documents() {
    let file = GgufFile::open(bitnet_testdata::smollm2()).unwrap();
    let model = Model::load(&file).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let template = ChatTemplate::for_model(&tokenizer).unwrap();
    let compiler = ConstraintCompiler::new(&tokenizer).unwrap();
    let pool = ThreadPool::new(2);
    let prompt = template
        .encode(
            &tokenizer,
            &[Message::user("Describe a user of a web site as JSON.")],
            true,
        )
        .unwrap();
    for seed in 0..3 {
        let request = GenerateRequest {
            prompt: prompt.clone(),
            max_tokens: 160,
            sampling: SamplingParams::unfiltered(seed),
            stop: Vec::new(),
            stop_tokens: template.stop_token_ids(&tokenizer),
            show_special: false,
            constraint: Some(
                compiler
                    .compile(&ConstraintSpec::JsonSchema(schema()))
                    .unwrap(),
            ),
        };
        let mut cache = model.new_cache(512);
        let mut text = String::new();
        let g = generate(&model, &tokenizer, &mut cache, &pool, &request, |piece| {
            text.push_str(piece);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            g.finish,
            FinishReason::EndOfGeneration,
            "seed {seed}: {text}"
        );
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
        check_document(&doc);
    }
}

/// Greedy walk: the shortest allowed token each step until an end token; returns the text.
fn shortest_walk(
    tokenizer: &Tokenizer,
    compiler: &ConstraintCompiler,
    spec: ConstraintSpec,
) -> String {
    let mut constraint = compiler.compile(&spec).unwrap();
    let mut bytes = Vec::new();
    for _ in 0..200 {
        let mask = constraint.mask().unwrap();
        let token = (0..tokenizer.vocab_size() as u32)
            .filter(|&t| mask.allows(t))
            .min_by_key(|&t| {
                let b = tokenizer.token_bytes(t, false).unwrap();
                // Prefer ending, then short text tokens.
                if tokenizer.is_end_of_generation(t) {
                    0
                } else if b.is_empty() {
                    usize::MAX
                } else {
                    b.len()
                }
            })
            .unwrap();
        constraint.consume(token).unwrap();
        if tokenizer.is_end_of_generation(token) {
            return String::from_utf8(bytes).unwrap();
        }
        bytes.extend(tokenizer.token_bytes(token, false).unwrap());
        if constraint.is_stopped() {
            return String::from_utf8(bytes).unwrap();
        }
    }
    panic!("no end: {}", String::from_utf8_lossy(&bytes));
}

#[test]
fn regex_lark_and_gbnf_constraints_hold() {
    let tokenizer = tokenizer();
    let compiler = ConstraintCompiler::new(&tokenizer).unwrap();
    let text = shortest_walk(
        &tokenizer,
        &compiler,
        ConstraintSpec::Regex("[0-9]{3}-(yes|no)".into()),
    );
    assert!(text.len() == 6 || text.len() == 7, "regex output {text:?}");
    assert!(
        text[..3].chars().all(|c| c.is_ascii_digit())
            && (text.ends_with("-no") || text.ends_with("-yes"))
    );
    let text = shortest_walk(
        &tokenizer,
        &compiler,
        ConstraintSpec::Lark("start: \"(\" item (\",\" item)* \")\"\nitem: \"a\" | \"bb\"".into()),
    );
    assert_eq!(text, "(a)");
    let text = shortest_walk(
        &tokenizer,
        &compiler,
        ConstraintSpec::Gbnf("root ::= \"x=\" num\nnum ::= [1-9] [0-9]{2}".into()),
    );
    assert!(text.starts_with("x=") && text.len() == 5, "{text:?}");
    assert!(text[2..].parse::<u32>().unwrap() >= 100);
}

#[test]
fn unenforceable_schemas_are_refused_naming_the_keyword() {
    let tokenizer = tokenizer();
    let compiler = ConstraintCompiler::new(&tokenizer).unwrap();
    let e = compiler
        .compile(&ConstraintSpec::JsonSchema(json!({
            "type": "array", "items": {"type": "integer"}, "uniqueItems": true
        })))
        .unwrap_err();
    assert!(matches!(e, ConstraintError::Unsupported { .. }));
    assert!(e.to_string().contains("uniqueItems"), "{e}");
    let e = compiler
        .compile(&ConstraintSpec::Lark("start: undefined_rule".into()))
        .unwrap_err();
    assert!(e.to_string().contains("undefined_rule"), "{e}");
    let e = compiler
        .compile(&ConstraintSpec::Regex("(unclosed".into()))
        .unwrap_err();
    assert!(matches!(e, ConstraintError::Unsupported { .. }), "{e}");
}
