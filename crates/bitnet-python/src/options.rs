//! Python arguments checked and turned into the engine's types: sampling settings with
//! `bitnet run`'s defaults, stop strings (one or a list), token ids, chat messages, counts and
//! the device. Each bad value raises `ValueError` naming the argument and the value.

use bitnet_engine::SamplingParams;
use bitnet_tokenizer::chat::Message;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `stop=`: one string or a list of them.
#[derive(FromPyObject)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The settings of one generation.
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// `json_schema=`: the output must be JSON valid against it.
    pub json_schema: Option<serde_json::Value>,
}

impl GenerateOptions {
    /// Checks the Python arguments. Settings not exposed keep `bitnet run`'s defaults
    /// (`SamplingParams::greedy()` with the temperature given here).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        max_tokens: i64,
        temperature: f32,
        top_p: f32,
        top_k: i64,
        min_p: f32,
        repeat_penalty: f32,
        seed: Option<i64>,
        stop: Option<Stop>,
    ) -> PyResult<Self> {
        let max_tokens = non_negative("max_tokens", max_tokens)?;
        let top_k = non_negative("top_k", top_k)?;
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(bad(format!(
                "temperature must be >= 0 (0 is greedy), got {temperature}"
            )));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(bad(format!(
                "top_p must be in (0, 1] (1 is off), got {top_p}"
            )));
        }
        if !(0.0..=1.0).contains(&min_p) {
            return Err(bad(format!(
                "min_p must be in [0, 1] (0 is off), got {min_p}"
            )));
        }
        if !(repeat_penalty.is_finite() && repeat_penalty > 0.0) {
            return Err(bad(format!(
                "repeat_penalty must be > 0 (1 is off), got {repeat_penalty}"
            )));
        }
        let defaults = SamplingParams::greedy();
        let seed = match seed {
            Some(s) => u64::try_from(s).map_err(|_| bad(format!("seed must be >= 0, got {s}")))?,
            None => defaults.seed,
        };
        let stop = match stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.iter().any(String::is_empty) {
            return Err(bad("stop strings must not be empty".to_string()));
        }
        Ok(GenerateOptions {
            max_tokens,
            sampling: SamplingParams {
                temperature,
                top_k,
                top_p,
                min_p,
                repeat_penalty,
                seed,
                ..defaults
            },
            stop,
            json_schema: None,
        })
    }

    /// Adds `json_schema=`: a dict (serialised with Python's `json`) or a JSON string.
    pub fn with_json_schema(mut self, schema: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(schema) = schema else {
            return Ok(self);
        };
        let text: String = match schema.extract::<String>() {
            Ok(text) => text,
            Err(_) if schema.is_instance_of::<PyDict>() => schema
                .py()
                .import("json")?
                .call_method1("dumps", (schema,))?
                .extract()?,
            Err(_) => {
                return Err(PyTypeError::new_err(
                    "json_schema must be a dict or a JSON string",
                ))
            }
        };
        let value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("json_schema is not valid JSON: {e}")))?;
        self.json_schema = Some(value);
        Ok(self)
    }
}

fn bad(message: String) -> PyErr {
    PyValueError::new_err(message)
}

/// A count that may be 0.
pub fn non_negative(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| bad(format!("{name} must be >= 0, got {value}")))
}

/// A count that must be at least 1.
pub fn positive(name: &str, value: i64) -> PyResult<usize> {
    match usize::try_from(value) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(bad(format!("{name} must be >= 1, got {value}"))),
    }
}

/// Token ids as the engine takes them (the model and tokenizer check the vocabulary bound).
pub fn token_ids(tokens: &[i64]) -> PyResult<Vec<u32>> {
    tokens
        .iter()
        .map(|&t| {
            u32::try_from(t)
                .map_err(|_| bad(format!("token id {t} is not a valid id (0 ..= 2^32-1)")))
        })
        .collect()
}

/// `device=`: only the CPU is built.
pub fn check_device(device: Option<&str>) -> PyResult<()> {
    match device {
        None | Some("cpu") => Ok(()),
        Some(other) => Err(bad(format!(
            "device {other:?} is not available: this build runs on the CPU only (GPU is not \
             built); use device='cpu' or leave it out"
        ))),
    }
}

/// Chat messages from dicts with "role" and "content" strings.
pub fn messages(dicts: &[Bound<'_, PyDict>]) -> PyResult<Vec<Message>> {
    if dicts.is_empty() {
        return Err(bad(
            "messages is empty: give at least one message".to_string()
        ));
    }
    dicts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let field = |key: &str| -> PyResult<String> {
                d.get_item(key)?
                    .ok_or_else(|| bad(format!("messages[{i}] has no {key:?}")))?
                    .extract()
                    .map_err(|_| {
                        PyTypeError::new_err(format!("messages[{i}][{key:?}] must be a str"))
                    })
            };
            Ok(Message::new(field("role")?, field("content")?))
        })
        .collect()
}
