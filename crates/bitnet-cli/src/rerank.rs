//! `bitnet rerank`: a reranker's (cross-encoder's, `pooling_type` rank) relevance score of each
//! document for a query. Each pair is tokenized as `[CLS] query [SEP] document [SEP]` (segment 0,
//! then 1), all pairs run through the encoder in one batch and its classification head. Prints
//! one score per line in the documents' order, or with `--json` a document with each pair's
//! index, tokens and score.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bitnet_model::Pooling;

use crate::embed::EmbeddingModel;

/// Arguments of `bitnet rerank`.
#[derive(Debug, clap::Args)]
pub struct RerankArgs {
    /// A reranker (GGUF `bert` with a classification head; `bitnet convert` makes one from a
    /// Hugging Face BertForSequenceClassification checkpoint).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// The query.
    #[arg(short = 'q', long)]
    pub query: String,
    /// The documents to score against the query.
    #[arg(required = true)]
    pub documents: Vec<String>,
    /// Print a JSON document: per document its index, token ids and score.
    #[arg(long)]
    pub json: bool,
    /// Compute threads (default: BITNET_THREADS, else the physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

/// Runs `bitnet rerank`.
pub fn run(args: RerankArgs) -> anyhow::Result<()> {
    let model = EmbeddingModel::open(&args.model)?;
    if model.encoder.pooling() != Some(Pooling::Rank) {
        bail!(
            "{} is not a reranker (its pooling_type is not rank, or it has no classification \
             head): use `bitnet embed` for embedding models",
            args.model.display()
        );
    }
    let n_ctx = model.encoder.n_ctx();
    let mut ids = Vec::with_capacity(args.documents.len());
    let mut types = Vec::with_capacity(args.documents.len());
    for (i, document) in args.documents.iter().enumerate() {
        let pair = model
            .tokenizer
            .encode_pair(&args.query, document)
            .context("tokenizing")?;
        if pair.ids.len() > n_ctx {
            bail!(
                "document {} with the query has {} tokens, more than the model's context of \
                 {n_ctx}: shorten it",
                i + 1,
                pair.ids.len()
            );
        }
        ids.push(pair.ids);
        types.push(pair.segments);
    }
    let pool = crate::load::thread_pool(args.threads);
    let inputs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let segments: Vec<&[u32]> = types.iter().map(Vec::as_slice).collect();
    let scores = model
        .encoder
        .embed_with_segments(&inputs, Some(&segments), Pooling::Rank, false, &pool)
        .context("scoring the pairs")?;
    if args.json {
        let results: Vec<serde_json::Value> = scores
            .iter()
            .zip(&ids)
            .enumerate()
            .map(|(index, (score, tokens))| {
                serde_json::json!({"index": index, "tokens": tokens, "score": score[0]})
            })
            .collect();
        let doc = serde_json::json!({
            "model": args.model.display().to_string(),
            "query": args.query,
            "results": results,
        });
        println!("{doc}");
    } else {
        let lines: Vec<String> = scores.iter().map(|s| s[0].to_string()).collect();
        println!("{}", lines.join("\n"));
    }
    Ok(())
}
