//! Constrained-decoding flags shared by `run`, `chat` and `bench`: `--json-schema FILE` or
//! `--grammar FILE` (GBNF when the file ends in `.gbnf`, Lark when it ends in `.lark`, else by
//! its text: `::=` rules are GBNF), compiled for the model's vocabulary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bitnet_engine::{Constraint, ConstraintCompiler, ConstraintSpec};
use bitnet_tokenizer::Tokenizer;

/// Output constraints (at most one).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConstraintArgs {
    /// Constrain the output to JSON valid against this JSON Schema file.
    #[arg(long = "json-schema", value_name = "FILE", conflicts_with = "grammar")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the output to this grammar file: GBNF (`.gbnf`, or `::=` rules) or
    /// llguidance's Lark (`.lark`, `start:` rules).
    #[arg(long = "grammar", value_name = "FILE")]
    pub grammar: Option<PathBuf>,
}

impl ConstraintArgs {
    /// What the flags ask the output to match (`None`: free text).
    pub fn spec(&self) -> anyhow::Result<Option<ConstraintSpec>> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        };
        if let Some(path) = &self.json_schema {
            let schema = serde_json::from_str(&read(path)?)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            return Ok(Some(ConstraintSpec::JsonSchema(schema)));
        }
        let Some(path) = &self.grammar else {
            return Ok(None);
        };
        let text = read(path)?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Ok(Some(match extension {
            "gbnf" => ConstraintSpec::Gbnf(text),
            "lark" => ConstraintSpec::Lark(text),
            _ if text.contains("::=") => ConstraintSpec::Gbnf(text),
            _ => ConstraintSpec::Lark(text),
        }))
    }

    /// A compiler for `tokenizer` when a constraint is asked for, and the spec it compiles.
    pub fn compiler(
        &self,
        tokenizer: &Tokenizer,
    ) -> anyhow::Result<Option<(ConstraintCompiler, ConstraintSpec)>> {
        let Some(spec) = self.spec()? else {
            return Ok(None);
        };
        let compiler = ConstraintCompiler::new(tokenizer)?;
        // Compile once now so a bad schema or grammar fails before the model runs.
        compiler.compile(&spec).with_context(|| self.source())?;
        Ok(Some((compiler, spec)))
    }

    fn source(&self) -> String {
        match (&self.json_schema, &self.grammar) {
            (Some(p), _) | (None, Some(p)) => p.display().to_string(),
            (None, None) => String::new(),
        }
    }
}

/// A fresh constraint for one generation.
pub fn fresh(
    compiled: &Option<(ConstraintCompiler, ConstraintSpec)>,
) -> anyhow::Result<Option<Constraint>> {
    match compiled {
        None => Ok(None),
        Some((compiler, spec)) => match compiler.compile(spec) {
            Ok(c) => Ok(Some(c)),
            Err(e) => bail!(e),
        },
    }
}
