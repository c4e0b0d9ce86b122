"""bitnet: the bitnet-rs inference engine in this Python process.

BitNet b1.58 models (ternary weights, int8 activations) and llama-family GGUF files, run by the
same Rust engine as the ``bitnet`` command line, with the GIL released while the model computes.

    import bitnet
    model = bitnet.Model()                      # the shipped 29M BitNet b1.58 model
    print(model.generate("In the beginning", max_tokens=40))
    for piece in model.stream("And the LORD said", max_tokens=20):
        print(piece, end="", flush=True)

    embedder = bitnet.Embedder("all-MiniLM-L6-v2.gguf")   # an encoder converted by `bitnet convert`
    vectors = embedder.embed(["first text", "second text"])   # float32, shape (2, 384)
"""

from ._bitnet import BitnetError, Embedder, Model, TextStream, __version__

__all__ = ["BitnetError", "Embedder", "Model", "TextStream", "__version__"]
