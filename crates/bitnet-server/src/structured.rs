//! Structured output on both endpoints: OpenAI's `response_format` (`json_object`, or
//! `json_schema` with its `schema` and `strict`) and this server's `grammar` extension (a GBNF
//! string as llama.cpp's `grammar`, or `{"type": "gbnf" | "lark" | "regex", "value": "..."}`),
//! compiled into the engine's token-mask [`Constraint`]. A schema or grammar that cannot be
//! compiled or enforced is a 400 naming the part; nothing is ever silently ignored.

use bitnet_engine::{Constraint, ConstraintCompiler, ConstraintError, ConstraintSpec};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The structured-output fields of a request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StructuredFields {
    pub response_format: Option<Value>,
    pub grammar: Option<Value>,
}

impl StructuredFields {
    /// What the request asks the output to match (`None`: free text), and the field that asked.
    pub fn spec(&self) -> Result<Option<(ConstraintSpec, &'static str)>, ApiError> {
        let format = match &self.response_format {
            None | Some(Value::Null) => None,
            Some(value) => response_format_spec(value)?,
        };
        let grammar = match &self.grammar {
            None | Some(Value::Null) => None,
            Some(value) => Some(grammar_spec(value)?),
        };
        match (format, grammar) {
            (Some(_), Some(_)) => Err(ApiError::invalid_param(
                "grammar",
                "`grammar` and a JSON `response_format` cannot be combined: send one",
            )),
            (Some(spec), None) => Ok(Some((spec, "response_format"))),
            (None, Some(spec)) => Ok(Some((spec, "grammar"))),
            (None, None) => Ok(None),
        }
    }
}

/// `response_format`: `text`, `json_object` or `json_schema`.
fn response_format_spec(value: &Value) -> Result<Option<ConstraintSpec>, ApiError> {
    let bad = |message: String| ApiError::invalid_param("response_format", message);
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`response_format` needs a string `type`".into()))?;
    match kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(ConstraintSpec::JsonObject)),
        "json_schema" => {
            let inner = value.get("json_schema").ok_or_else(|| {
                bad("`response_format` of type `json_schema` needs a `json_schema` object".into())
            })?;
            if let Some(strict) = inner.get("strict") {
                if !strict.is_boolean() && !strict.is_null() {
                    return Err(bad("`json_schema.strict` must be a boolean".into()));
                }
            }
            // Strict or not, the schema is enforced: a schema that cannot be is refused.
            match inner.get("schema") {
                None | Some(Value::Null) => Ok(Some(ConstraintSpec::JsonObject)),
                Some(schema) if schema.is_object() || schema.is_boolean() => {
                    Ok(Some(ConstraintSpec::JsonSchema(schema.clone())))
                }
                Some(_) => Err(bad(
                    "`json_schema.schema` must be a JSON Schema object".into()
                )),
            }
        }
        other => Err(bad(format!(
            "`response_format.type` {other:?} is not supported (text, json_object, json_schema)"
        ))),
    }
}

/// The `grammar` extension: a GBNF string, or `{"type": "gbnf" | "lark" | "regex", "value"}`.
fn grammar_spec(value: &Value) -> Result<ConstraintSpec, ApiError> {
    let bad = |message: &str| ApiError::invalid_param("grammar", message);
    match value {
        Value::String(gbnf) => Ok(ConstraintSpec::Gbnf(gbnf.clone())),
        Value::Object(object) => {
            let text = object
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`grammar.value` must be a string"))?
                .to_string();
            match object.get("type").and_then(Value::as_str) {
                Some("gbnf") => Ok(ConstraintSpec::Gbnf(text)),
                Some("lark") => Ok(ConstraintSpec::Lark(text)),
                Some("regex") => Ok(ConstraintSpec::Regex(text)),
                _ => Err(bad("`grammar.type` must be \"gbnf\", \"lark\" or \"regex\"")),
            }
        }
        _ => Err(bad(
            "`grammar` must be a GBNF string or {\"type\": \"gbnf\"|\"lark\"|\"regex\", \"value\": \"...\"}",
        )),
    }
}

/// Compiles `spec` for a request, the error a 400 on `param`.
pub fn compile(
    compiler: Result<&ConstraintCompiler, &ConstraintError>,
    spec: &ConstraintSpec,
    param: &str,
) -> Result<Constraint, ApiError> {
    let compiler = compiler.map_err(|e| ApiError::invalid_param(param, e.to_string()))?;
    compiler
        .compile(spec)
        .map_err(|e| ApiError::invalid_param(param, format!("`{param}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> StructuredFields {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn response_formats_and_grammars_become_specs() {
        assert!(fields(r#"{"response_format":{"type":"text"}}"#)
            .spec()
            .unwrap()
            .is_none());
        let (spec, param) = fields(r#"{"response_format":{"type":"json_object"}}"#)
            .spec()
            .unwrap()
            .unwrap();
        assert_eq!(
            (spec, param),
            (ConstraintSpec::JsonObject, "response_format")
        );
        let (spec, _) = fields(
            r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"integer"}}}}"#,
        )
        .spec()
        .unwrap()
        .unwrap();
        assert_eq!(
            spec,
            ConstraintSpec::JsonSchema(serde_json::json!({"type":"integer"}))
        );
        let (spec, param) = fields(r#"{"grammar":"root ::= \"a\""}"#)
            .spec()
            .unwrap()
            .unwrap();
        assert_eq!(
            (spec, param),
            (ConstraintSpec::Gbnf("root ::= \"a\"".into()), "grammar")
        );
        let (spec, _) = fields(r#"{"grammar":{"type":"regex","value":"[0-9]+"}}"#)
            .spec()
            .unwrap()
            .unwrap();
        assert_eq!(spec, ConstraintSpec::Regex("[0-9]+".into()));
    }

    #[test]
    fn bad_fields_name_the_param() {
        for json in [
            r#"{"response_format":{"type":"yaml"}}"#,
            r#"{"response_format":{"type":"json_schema"}}"#,
            r#"{"response_format":{"type":"json_schema","json_schema":{"schema":5}}}"#,
        ] {
            let e = fields(json).spec().unwrap_err();
            assert_eq!(e.param.as_deref(), Some("response_format"), "{json}");
        }
        let e = fields(r#"{"grammar":{"type":"ebnf","value":"x"}}"#)
            .spec()
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("grammar"));
        let e = fields(r#"{"grammar":"root ::= \"a\"","response_format":{"type":"json_object"}}"#)
            .spec()
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("grammar"));
    }
}
