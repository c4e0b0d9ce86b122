//! One file per architecture, each reading like its model's diagram: which tensors a layer
//! loads (llama.cpp's GGUF names, `src/models/<arch>.cpp` there), which metadata the
//! architecture adds to the common configuration, and the order in which one transformer block
//! runs the shared steps of [`crate::blocks`]. [`crate::arch`] maps each
//! `general.architecture` string to one of these files.
//!
//! Every file has the same three entry points:
//! - `configure`: the architecture's own hyper-parameters (sliding-window layers, ...);
//! - `load_layer`: block `il`'s weights;
//! - `block`: block `il` applied to the residual stream `x` of a whole batch.

mod baichuan;
mod bert;
mod bitnet;
mod chatglm;
mod command_r;
mod deepseek;
mod falcon;
mod gemma;
mod gemma2;
mod gemma3;
mod gemma3_bitnet_embed;
mod glm4;
mod gpt2;
mod llama;
mod mpt;
mod phi3;
mod qwen2moe;
mod qwen3;
mod qwen3_bitnet_embed;
mod starcoder2;

use crate::arch::Graph;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors, PlainLayer, ProjectionInputNorms};

/// One block's weights: a gated-FFN block or a plain-FFN one, as its architecture loads it.
pub(crate) enum BlockWeights {
    Gated(Box<Layer>),
    Plain(Box<PlainLayer>),
}

/// A borrowed [`BlockWeights`].
#[derive(Clone, Copy)]
pub(crate) enum BlockRef<'a> {
    Gated(&'a Layer),
    Plain(&'a PlainLayer),
}

/// Fills in the architecture-specific part of the configuration.
pub(crate) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    match keys.arch.graph {
        Graph::Bitnet
        | Graph::Llama
        | Graph::Qwen3
        | Graph::Qwen3BitnetEmbed
        | Graph::Gemma
        | Graph::ChatGlm => Ok(()),
        Graph::Glm4 => glm4::configure(keys, cfg),
        Graph::Phi3 => phi3::configure(keys, cfg),
        Graph::Deepseek => deepseek::configure(keys, cfg),
        Graph::Qwen2Moe => qwen2moe::configure(keys, cfg),
        Graph::Baichuan => baichuan::configure(keys, cfg),
        Graph::CommandR => command_r::configure(keys, cfg),
        Graph::Gemma2 => gemma2::configure(keys, cfg),
        Graph::Gemma3 | Graph::Gemma3BitnetEmbed => gemma3::configure(keys, cfg),
        Graph::Starcoder2 => starcoder2::configure(keys, cfg),
        Graph::Gpt2 => gpt2::configure(keys, cfg),
        Graph::Falcon => falcon::configure(keys, cfg),
        Graph::Mpt => mpt::configure(keys, cfg),
        Graph::Bert => bert::configure(keys, cfg),
    }
}

/// Loads block `t.il`'s weights as the architecture declares them.
pub(crate) fn load_layer(t: &LayerTensors<'_>) -> Result<BlockWeights, ModelError> {
    let gated = match t.cfg.arch.graph {
        Graph::Bitnet => bitnet::load_layer(t),
        Graph::Llama => llama::load_layer(t),
        Graph::Qwen3 => qwen3::load_layer(t),
        Graph::Phi3 => phi3::load_layer(t),
        Graph::Deepseek => deepseek::load_layer(t),
        Graph::Qwen2Moe => qwen2moe::load_layer(t),
        Graph::Baichuan => baichuan::load_layer(t),
        Graph::Glm4 => glm4::load_layer(t),
        Graph::ChatGlm => chatglm::load_layer(t),
        Graph::CommandR => command_r::load_layer(t),
        Graph::Gemma => gemma::load_layer(t),
        Graph::Gemma2 => gemma2::load_layer(t),
        Graph::Gemma3 => gemma3::load_layer(t),
        Graph::Qwen3BitnetEmbed => qwen3_bitnet_embed::load_layer(t),
        Graph::Gemma3BitnetEmbed => gemma3_bitnet_embed::load_layer(t),
        Graph::Starcoder2 => {
            return starcoder2::load_layer(t).map(|l| BlockWeights::Plain(Box::new(l)))
        }
        Graph::Gpt2 => return gpt2::load_layer(t).map(|l| BlockWeights::Plain(Box::new(l))),
        Graph::Falcon => return falcon::load_layer(t).map(|l| BlockWeights::Plain(Box::new(l))),
        Graph::Mpt => return mpt::load_layer(t).map(|l| BlockWeights::Plain(Box::new(l))),
        Graph::Bert => return bert::load_layer(t).map(|l| BlockWeights::Plain(Box::new(l))),
    };
    gated.map(|l| BlockWeights::Gated(Box::new(l)))
}

/// Whether the graph multiplies the token embeddings by `sqrt(n_embd)` before the first block.
pub(crate) fn scales_embeddings(graph: Graph) -> bool {
    matches!(
        graph,
        Graph::Gemma | Graph::Gemma2 | Graph::Gemma3 | Graph::Gemma3BitnetEmbed
    )
}

/// Whether the graph adds learned position embeddings (`position_embd.weight`) to the input.
pub(crate) fn has_position_embeddings(graph: Graph) -> bool {
    matches!(graph, Graph::Gpt2 | Graph::Bert)
}

/// Whether the graph is an encoder: its output is the token states (pooled into embeddings),
/// not logits; it has no LM head and no KV cache across calls ([`crate::encoder`]). BERT, and
/// the BitNet embedding models (causal attention, but an embedding model all the same).
pub fn is_encoder(graph: Graph) -> bool {
    matches!(
        graph,
        Graph::Bert | Graph::Qwen3BitnetEmbed | Graph::Gemma3BitnetEmbed
    )
}

/// Whether the encoder's input is the token embeddings alone and its states go through the
/// final norm (`output_norm`) before pooling: the decoder-backbone embedding models. (BERT adds
/// position and type embeddings and norms them; its last block's states are pooled as they are.)
pub(crate) fn is_decoder_backbone_encoder(graph: Graph) -> bool {
    matches!(graph, Graph::Qwen3BitnetEmbed | Graph::Gemma3BitnetEmbed)
}

/// Whether the linears may carry one-element `<linear>.scale` tensors multiplying their output.
pub(crate) fn has_linear_scales(cfg: &ModelConfig) -> bool {
    cfg.arch.graph == Graph::Bitnet && bitnet::has_linear_scales(cfg)
}

/// Runs every block in order on the batch's residual stream `x`: the `gated` ones of a
/// gated-FFN graph or the `plain` ones of a plain-FFN graph (the other list is empty).
pub(crate) fn run_blocks(
    p: &mut Pass<'_, '_>,
    gated: &[Layer],
    plain: &[PlainLayer],
    x: &mut [f32],
) -> Result<(), ModelError> {
    let blocks = gated
        .iter()
        .map(BlockRef::Gated)
        .chain(plain.iter().map(BlockRef::Plain));
    for (il, layer) in blocks.enumerate() {
        block(p, il, layer, x)?;
    }
    Ok(())
}

/// Runs block `il` on the batch's residual stream `x`.
pub(crate) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    layer: BlockRef<'_>,
    x: &mut [f32],
) -> Result<(), ModelError> {
    let layer = match (p.cfg.arch.graph, layer) {
        (Graph::Starcoder2, BlockRef::Plain(l)) => return starcoder2::block(p, il, l, x),
        (Graph::Gpt2, BlockRef::Plain(l)) => return gpt2::block(p, il, l, x),
        (Graph::Falcon, BlockRef::Plain(l)) => return falcon::block(p, il, l, x),
        (Graph::Mpt, BlockRef::Plain(l)) => return mpt::block(p, il, l, x),
        (Graph::Bert, BlockRef::Plain(l)) => return bert::block(p, il, l, x),
        (_, BlockRef::Gated(l)) => l,
        (_, BlockRef::Plain(_)) => {
            return Err(ModelError::Internal(format!(
                "layer {il} was loaded as a plain-FFN block for a gated-FFN graph"
            )))
        }
    };
    match p.cfg.arch.graph {
        Graph::Bitnet => bitnet::block(p, il, layer, x),
        Graph::Llama => llama::block(p, il, layer, x),
        Graph::Qwen3 => qwen3::block(p, il, layer, x),
        Graph::Phi3 => phi3::block(p, il, layer, x),
        Graph::Deepseek => deepseek::block(p, il, layer, x),
        Graph::Qwen2Moe => qwen2moe::block(p, il, layer, x),
        Graph::Baichuan => baichuan::block(p, il, layer, x),
        Graph::Glm4 => glm4::block(p, il, layer, x),
        Graph::ChatGlm => chatglm::block(p, il, layer, x),
        Graph::CommandR => command_r::block(p, il, layer, x),
        Graph::Gemma => gemma::block(p, il, layer, x),
        Graph::Gemma2 => gemma2::block(p, il, layer, x),
        Graph::Gemma3 => gemma3::block(p, il, layer, x),
        Graph::Qwen3BitnetEmbed => qwen3_bitnet_embed::block(p, il, layer, x),
        Graph::Gemma3BitnetEmbed => gemma3_bitnet_embed::block(p, il, layer, x),
        Graph::Starcoder2 | Graph::Gpt2 | Graph::Falcon | Graph::Mpt | Graph::Bert => {
            Err(ModelError::Internal(format!(
                "layer {il} was loaded as a gated-FFN block for a plain-FFN graph"
            )))
        }
    }
}

/// An optional part of `layer` that the architecture's own loader always fills.
fn loaded<'a>(part: &'a Option<Vec<f32>>, name: &str, il: usize) -> Result<&'a [f32], ModelError> {
    part.as_deref().ok_or_else(|| {
        ModelError::Internal(format!("layer {il} was loaded without its `{name}` tensor"))
    })
}

/// The per-projection input norms of `layer`, which the BitNet embedding loaders always fill.
fn input_norms(layer: &Layer, il: usize) -> Result<&ProjectionInputNorms, ModelError> {
    layer.input_norms.as_ref().ok_or_else(|| {
        ModelError::Internal(format!(
            "layer {il} was loaded without its per-projection input norms"
        ))
    })
}
