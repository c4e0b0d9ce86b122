//! Sampling flags, named as llama.cpp names them, turned into the engine's `SamplingParams`.

use bitnet_engine::SamplingParams;

/// Sampling options (llama.cpp's flag names). `--temp 0` is greedy decoding.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy (always the most likely token).
    #[arg(long = "temp", default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0: off).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    /// Keep the most likely tokens up to this cumulative probability (1.0: off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than this fraction of the most likely one (0.0: off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Locally typical sampling threshold (1.0: off).
    #[arg(long = "typical", default_value_t = 1.0)]
    pub typical_p: f32,
    /// Penalise repeating the last `--repeat-last-n` tokens (1.0: off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtracted per earlier occurrence of a token.
    #[arg(long = "frequency-penalty", default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Subtracted once if a token occurred before.
    #[arg(long = "presence-penalty", default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Random seed (same seed, same output).
    #[arg(long = "seed", short = 's', default_value_t = 0xB17_4E7)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The engine's parameters.
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            logit_bias: Vec::new(),
            seed: self.seed,
        }
    }
}
