//! Pooling: how an encoder's token states become one vector per input (llama.cpp's
//! `<arch>.pooling_type`: 0 none, 1 mean, 2 cls, 3 last, 4 rank), L2 normalisation, and the
//! classification head of rank pooling ([`ClassifierHead`]: a cross-encoder's relevance score).

use bitnet_gguf::GgufFile;

use crate::error::ModelError;
use crate::weights;

/// How token states are pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// No pooling: one vector per token.
    None,
    /// The mean of every token's state (sentence-transformers' mean pooling at batch 1).
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
    /// The last token's state (decoder embedding models).
    Last,
    /// A reranker's score: the classification head ([`ClassifierHead`]) over the first token's
    /// state; one value per output label (one for a reranker).
    Rank,
}

impl Pooling {
    /// From the GGUF value of `<arch>.pooling_type`; `None` for llama.cpp's "unspecified" (-1 as
    /// an unsigned value is never read here).
    pub fn from_gguf(value: u64) -> Result<Option<Self>, ModelError> {
        match value {
            0 => Ok(Some(Pooling::None)),
            1 => Ok(Some(Pooling::Mean)),
            2 => Ok(Some(Pooling::Cls)),
            3 => Ok(Some(Pooling::Last)),
            4 => Ok(Some(Pooling::Rank)),
            other => Err(ModelError::InvalidConfig(format!(
                "unknown pooling_type {other} (0 none, 1 mean, 2 cls, 3 last, 4 rank)"
            ))),
        }
    }

    /// The GGUF value of `<arch>.pooling_type`.
    pub fn gguf_value(self) -> u32 {
        match self {
            Pooling::None => 0,
            Pooling::Mean => 1,
            Pooling::Cls => 2,
            Pooling::Last => 3,
            Pooling::Rank => 4,
        }
    }

    /// Parses a `--pooling` name: `none`, `mean`, `cls`, `last` or `rank`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Pooling::None),
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "last" => Some(Pooling::Last),
            "rank" => Some(Pooling::Rank),
            _ => None,
        }
    }

    /// The name [`Pooling::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::None => "none",
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
            Pooling::Rank => "rank",
        }
    }

    /// Pools `states` (`n` rows of `d` values, `n ≥ 1`): one row of `d` values, or all `n`
    /// rows for [`Pooling::None`]. Sums are in f64. [`Pooling::Rank`] gives the first token's
    /// state, the input of the [`ClassifierHead`].
    pub fn pool(self, states: &[f32], d: usize) -> Vec<f32> {
        let n = states.len() / d;
        match self {
            Pooling::None => states.to_vec(),
            Pooling::Cls | Pooling::Rank => states[..d].to_vec(),
            Pooling::Last => states[(n - 1) * d..n * d].to_vec(),
            Pooling::Mean => {
                let mut sum = vec![0.0f64; d];
                for row in states.chunks_exact(d) {
                    sum.iter_mut()
                        .zip(row)
                        .for_each(|(s, &v)| *s += f64::from(v));
                }
                sum.iter().map(|s| (s / n as f64) as f32).collect()
            }
        }
    }
}

/// A cross-encoder's classification head, as llama.cpp's rank pooling reads it: `cls.weight`
/// (`d × d`) and `cls.bias` then tanh over the first token's state (BERT's pooler), then
/// `cls.output.weight` (`labels × d`) and `cls.output.bias` when the file has them (Hugging
/// Face's `classifier`). Computed in f64.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    d: usize,
    dense: Vec<f32>,
    dense_b: Option<Vec<f32>>,
    output: Option<(usize, Vec<f32>, Option<Vec<f32>>)>,
}

/// Names of the head's tensors in GGUF.
pub const CLASSIFIER_TENSORS: [&str; 4] = [
    "cls.weight",
    "cls.bias",
    "cls.output.weight",
    "cls.output.bias",
];

impl ClassifierHead {
    /// The head of `file` for states of width `d`; `None` when the file has no `cls.weight`.
    pub fn load(file: &GgufFile, d: usize) -> Result<Option<Self>, ModelError> {
        let [w, b, out_w, out_b] = CLASSIFIER_TENSORS;
        if file.tensor(w).is_none() {
            for name in [b, out_w, out_b] {
                if file.tensor(name).is_some() {
                    return Err(ModelError::MissingTensor(format!(
                        "{w} (the file has {name}: a classification head without its first layer)"
                    )));
                }
            }
            return Ok(None);
        }
        let optional = |name: &str, dims: &[usize]| match file.tensor(name) {
            Some(_) => weights::tensor_f32(file, name, dims).map(Some),
            None => Ok(None),
        };
        let dense = weights::tensor_f32(file, w, &[d, d])?;
        let dense_b = optional(b, &[d])?;
        let output = match file.tensor(out_w) {
            Some(info) => {
                let labels = info.dims.get(1).copied().unwrap_or(0) as usize;
                if labels == 0 {
                    return Err(ModelError::TensorShape {
                        name: out_w.into(),
                        found: info.dims.clone(),
                        expected: vec![d as u64, 1],
                    });
                }
                let weight = weights::tensor_f32(file, out_w, &[d, labels])?;
                Some((labels, weight, optional(out_b, &[labels])?))
            }
            None if file.tensor(out_b).is_some() => {
                return Err(ModelError::MissingTensor(format!(
                    "{out_w} (the file has {out_b} without it)"
                )))
            }
            None => None,
        };
        Ok(Some(ClassifierHead {
            d,
            dense,
            dense_b,
            output,
        }))
    }

    /// Number of values the head gives per input (the labels; 1 for a reranker).
    pub fn labels(&self) -> usize {
        self.output.as_ref().map_or(self.d, |(n, _, _)| *n)
    }

    /// The head over one state of `d` values (the first token's).
    pub fn apply(&self, state: &[f32]) -> Vec<f32> {
        let d = self.d;
        let affine = |w: &[f32], b: Option<&Vec<f32>>, x: &[f64]| -> Vec<f64> {
            w.chunks_exact(d)
                .enumerate()
                .map(|(r, row)| {
                    let dot: f64 = row.iter().zip(x).map(|(&w, &x)| f64::from(w) * x).sum();
                    dot + b.map_or(0.0, |b| f64::from(b[r]))
                })
                .collect()
        };
        let x: Vec<f64> = state.iter().map(|&v| f64::from(v)).collect();
        let pooled: Vec<f64> = affine(&self.dense, self.dense_b.as_ref(), &x)
            .into_iter()
            .map(f64::tanh)
            .collect();
        let out = match &self.output {
            Some((_, w, b)) => affine(w, b.as_ref(), &pooled),
            None => pooled,
        };
        out.into_iter().map(|v| v as f32).collect()
    }
}

/// Divides each row of `d` values by its Euclidean norm (a zero row stays zero).
pub fn l2_normalize_rows(x: &mut [f32], d: usize) {
    for row in x.chunks_exact_mut(d) {
        let norm = row
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            row.iter_mut()
                .for_each(|v| *v = (f64::from(*v) / norm) as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes() {
        let states = [1.0f32, 2.0, 3.0, 4.0, 5.0, 9.0];
        assert_eq!(Pooling::Mean.pool(&states, 2), [3.0, 5.0]);
        assert_eq!(Pooling::Cls.pool(&states, 2), [1.0, 2.0]);
        assert_eq!(Pooling::Last.pool(&states, 2), [5.0, 9.0]);
        assert_eq!(Pooling::None.pool(&states, 2), states);
        let mut v = [3.0f32, 4.0, 0.0, 0.0];
        l2_normalize_rows(&mut v, 2);
        assert_eq!(v, [0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn gguf_values_and_names_round_trip() {
        for p in [
            Pooling::None,
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Last,
            Pooling::Rank,
        ] {
            assert_eq!(Pooling::from_gguf(p.gguf_value() as u64).unwrap(), Some(p));
            assert_eq!(Pooling::from_name(p.name()), Some(p));
        }
        assert!(Pooling::from_gguf(9)
            .unwrap_err()
            .to_string()
            .contains("4 rank"));
    }
}
