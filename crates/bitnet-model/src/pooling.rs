//! Pooling: how an encoder's token states become one vector per input (llama.cpp's
//! `<arch>.pooling_type`: 0 none, 1 mean, 2 cls, 3 last, 4 rank), and L2 normalisation.

use crate::error::ModelError;

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
}

impl Pooling {
    /// From the GGUF value of `<arch>.pooling_type`; `None` for llama.cpp's "unspecified" (-1 as
    /// an unsigned value is never read here). Rank pooling (4) needs a classification head that
    /// is not built: an error.
    pub fn from_gguf(value: u64) -> Result<Option<Self>, ModelError> {
        match value {
            0 => Ok(Some(Pooling::None)),
            1 => Ok(Some(Pooling::Mean)),
            2 => Ok(Some(Pooling::Cls)),
            3 => Ok(Some(Pooling::Last)),
            4 => Err(ModelError::InvalidConfig(
                "pooling_type 4 (rank: a reranker's classification head) is not implemented".into(),
            )),
            other => Err(ModelError::InvalidConfig(format!(
                "unknown pooling_type {other} (0 none, 1 mean, 2 cls, 3 last)"
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
        }
    }

    /// Parses a `--pooling` name: `none`, `mean`, `cls` or `last`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Pooling::None),
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "last" => Some(Pooling::Last),
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
        }
    }

    /// Pools `states` (`n` rows of `d` values, `n ≥ 1`): one row of `d` values, or all `n`
    /// rows for [`Pooling::None`]. Sums are in f64.
    pub fn pool(self, states: &[f32], d: usize) -> Vec<f32> {
        let n = states.len() / d;
        match self {
            Pooling::None => states.to_vec(),
            Pooling::Cls => states[..d].to_vec(),
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
        for p in [Pooling::None, Pooling::Mean, Pooling::Cls, Pooling::Last] {
            assert_eq!(Pooling::from_gguf(p.gguf_value() as u64).unwrap(), Some(p));
            assert_eq!(Pooling::from_name(p.name()), Some(p));
        }
        assert!(Pooling::from_gguf(4)
            .unwrap_err()
            .to_string()
            .contains("rank"));
        assert!(Pooling::from_gguf(9).is_err());
    }
}
