//! `bitnet embed`: sentence embeddings from an embedding model: a BERT encoder, or a BitNet
//! embedding model (Qwen3/Gemma 3 backbone, ternary). Each text is tokenized with the model's
//! vocabulary (BERT's WordPiece with `[CLS]` … `[SEP]`; the BOS/EOS the file asks for), run
//! through the model (all texts in one batch), pooled as the file says (`<arch>.pooling_type`) or as `--pooling`
//! asks, and L2-normalised unless `--no-normalize`. Prints one vector per line (values
//! separated by spaces), or a JSON document with `--json`. A text longer than the model's
//! context is an error, or with `--truncate` is cut to it (its last text tokens dropped,
//! `[CLS]` and `[SEP]` kept).

use std::path::PathBuf;

use anyhow::{bail, Context};
use bitnet_gguf::GgufFile;
use bitnet_model::{Encoder, Pooling};
use bitnet_tokenizer::Tokenizer;

/// Arguments of `bitnet embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// An embedding model (GGUF): architecture `bert` (`bitnet convert` makes one from a
    /// Hugging Face BERT checkpoint), or a BitNet embedding model (`qwen3`/`gemma3` with
    /// `*_norm_in` tensors, as microsoft/BitNet's converter writes them).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// The texts to embed (one vector each).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub texts: Vec<String>,
    /// Read the texts from this file instead, one per line.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Pooling: `mean`, `cls`, `last`, `none` (one vector per token, one line each), or `rank`
    /// (a reranker's classification head over the text: its score); default: the file's
    /// `pooling_type`.
    #[arg(long, value_parser = parse_pooling)]
    pub pooling: Option<Pooling>,
    /// Do not L2-normalise the vectors.
    #[arg(long)]
    pub no_normalize: bool,
    /// Print a JSON document: per text its index, token ids, whether it was truncated, and
    /// its vector.
    #[arg(long)]
    pub json: bool,
    /// Cut texts longer than the model's context to it (dropping their last text tokens,
    /// keeping [CLS] and [SEP]) instead of failing.
    #[arg(long)]
    pub truncate: bool,
    /// Compute threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    Pooling::from_name(s)
        .ok_or_else(|| format!("unknown pooling {s:?}: use mean, cls, last, none or rank"))
}

/// An encoder model with its tokenizer, ready to embed texts.
pub struct EmbeddingModel {
    pub encoder: Encoder,
    pub tokenizer: Tokenizer,
}

impl EmbeddingModel {
    /// Opens `path` as an encoder and its vocabulary.
    pub fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = GgufFile::open(path).with_context(|| format!("opening {}", path.display()))?;
        let encoder =
            Encoder::load(&file).with_context(|| format!("loading {}", path.display()))?;
        let tokenizer = Tokenizer::from_gguf(&file)
            .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
        Ok(EmbeddingModel { encoder, tokenizer })
    }

    /// The pooling in effect: `requested`, else the file's, else an error saying so.
    pub fn pooling(&self, requested: Option<Pooling>) -> anyhow::Result<Pooling> {
        match requested.or(self.encoder.pooling()) {
            Some(p) => Ok(p),
            None => bail!("the model does not state its pooling (no pooling_type): pass --pooling"),
        }
    }
}

/// Runs `bitnet embed`.
pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let model = EmbeddingModel::open(&args.model)?;
    let texts: Vec<String> = match &args.file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading {}", file.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => args.texts.clone(),
    };
    if texts.is_empty() {
        bail!("no texts to embed");
    }
    let pooling = model.pooling(args.pooling)?;
    let n_ctx = model.encoder.n_ctx();
    let mut ids = Vec::with_capacity(texts.len());
    let mut truncated = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let (t, cut) = if args.truncate {
            model.tokenizer.encode_truncated(text, n_ctx)
        } else {
            model.tokenizer.encode(text).map(|t| (t, false))
        }
        .with_context(|| format!("tokenizing text {}", i + 1))?;
        if t.len() > n_ctx {
            bail!(
                "text {} has {} tokens, more than the model's context of {n_ctx}: shorten it, or \
                 pass --truncate to drop its last tokens",
                i + 1,
                t.len(),
            );
        }
        ids.push(t);
        truncated.push(cut);
    }
    let pool = crate::load::thread_pool(args.threads);
    let inputs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let vectors = model
        .encoder
        .embed(&inputs, pooling, !args.no_normalize, &pool)
        .context("computing the embeddings")?;
    // a reranker's head gives one value per label, not a vector of the model's width
    let d = match (pooling, model.encoder.head()) {
        (Pooling::Rank, Some(head)) => head.labels(),
        _ => model.encoder.dim(),
    };
    let normalized = !args.no_normalize && pooling != Pooling::Rank;
    if args.json {
        let data: Vec<serde_json::Value> = vectors
            .iter()
            .zip(ids.iter().zip(&truncated))
            .enumerate()
            .map(|(index, (v, (tokens, cut)))| {
                serde_json::json!({
                    "index": index,
                    "tokens": tokens,
                    "truncated": cut,
                    "embedding": if pooling == Pooling::None {
                        serde_json::json!(v.chunks_exact(d).collect::<Vec<_>>())
                    } else {
                        serde_json::json!(v)
                    },
                })
            })
            .collect();
        let doc = serde_json::json!({
            "model": args.model.display().to_string(),
            "dim": d,
            "pooling": pooling.name(),
            "normalized": normalized,
            "data": data,
        });
        println!("{doc}");
    } else {
        let mut out = String::new();
        for v in &vectors {
            for row in v.chunks_exact(d) {
                let line: Vec<String> = row.iter().map(f32::to_string).collect();
                out.push_str(&line.join(" "));
                out.push('\n');
            }
        }
        print!("{out}");
    }
    Ok(())
}
