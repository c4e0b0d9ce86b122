"""Type stubs of the bitnet package (the native module bitnet._bitnet re-exported)."""

from os import PathLike
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    TypedDict,
    Union,
    overload,
)

import numpy as np
import numpy.typing as npt

__version__: str

class BitnetError(Exception):
    """An error from the engine (loading a model, tokenizing, running it)."""

class ModelInfo(TypedDict):
    path: str
    name: Optional[str]
    architecture: str
    parameters: int
    file_bytes: int
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head: Literal["f16", "q8_0", "q6_k"]
    threads: int
    isa: str
    bos: Optional[int]
    eos: Optional[int]

class Perplexity(TypedDict):
    ppl: float
    stderr: float
    chunk_ppl: List[float]
    tokens_scored: int

class Message(TypedDict):
    role: str
    content: str

FinishReason = Literal["end_of_generation", "stop_string", "length", "context_full"]

class TextStream(Iterator[str]):
    """Text pieces of one generation, as they are decoded (from Model.stream)."""

    def __iter__(self) -> "TextStream": ...
    def __next__(self) -> str: ...
    @property
    def tokens(self) -> Optional[List[int]]:
        """Generated token ids; None until the iterator is exhausted."""
    @property
    def finish_reason(self) -> Optional[FinishReason]:
        """Why the generation ended; None until the iterator is exhausted."""

class Embedder:
    """An encoder model (BERT, GGUF) loaded in this process: sentence embeddings, or a
    reranker's relevance scores.

    path: the .gguf encoder (`bitnet convert` makes one from a Hugging Face checkpoint).
    threads: kernel threads (default: BITNET_THREADS, else the physical cores). pooling:
    "mean", "cls", "last" or "rank" (default: the file's pooling_type). normalize: L2-normalise
    the vectors of embed. Raises FileNotFoundError for a missing file, BitnetError for a file
    the engine cannot load, ValueError for a bad argument.
    """

    def __init__(
        self,
        path: Union[str, "PathLike[str]"],
        threads: Optional[int] = None,
        pooling: Optional[Literal["mean", "cls", "last", "rank"]] = None,
        normalize: bool = True,
    ) -> None: ...
    @property
    def dim(self) -> int:
        """Width of the vectors."""
    @property
    def n_ctx(self) -> int:
        """The most tokens one input may have."""
    @property
    def pooling(self) -> Literal["mean", "cls", "last", "rank"]:
        """The pooling in effect."""
    def tokenize(self, text: str, truncate: bool = False) -> List[int]:
        """Token ids of text as embed gives them to the model ([CLS] ... [SEP])."""
    @overload
    def embed(self, texts: str, truncate: bool = False) -> npt.NDArray[np.float32]: ...
    @overload
    def embed(
        self, texts: Sequence[str], truncate: bool = False
    ) -> npt.NDArray[np.float32]: ...
    def embed(
        self, texts: Union[str, Sequence[str]], truncate: bool = False
    ) -> npt.NDArray[np.float32]:
        """Embeddings: float32 of shape (dim,) for one string, (len(texts), dim) for a list.
        truncate=True cuts texts longer than the context (last text tokens dropped, [CLS] and
        [SEP] kept) instead of raising ValueError."""
    def rerank(self, query: str, documents: Sequence[str]) -> List[float]:
        """Relevance scores of each document for query, in the documents' order (a reranker:
        pooling "rank"); each pair is [CLS] query [SEP] document [SEP]."""

class Model:
    """A GGUF model loaded in this process.

    path: the .gguf file (None: the model shipped in the package). threads: kernel threads
    (default: BITNET_THREADS, else the physical cores). head: "f16" (default), "q8_0" or "q6_k".
    device: None or "cpu" (this build has no GPU backend; anything else raises ValueError).
    Raises FileNotFoundError for a missing file, BitnetError for a file the engine cannot load.
    """

    def __init__(
        self,
        path: Union[str, "PathLike[str]", None] = None,
        threads: Optional[int] = None,
        head: Optional[Literal["f16", "q8_0", "q6_k"]] = None,
        device: Optional[Literal["cpu"]] = None,
    ) -> None: ...
    @property
    def info(self) -> ModelInfo:
        """What was loaded: file, architecture, sizes, head format, threads, kernel ISA."""
    def generate(
        self,
        prompt: str,
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        json_schema: Union[Dict[str, Any], str, None] = None,
    ) -> str:
        """The continuation of prompt (greedy by default), as `bitnet run` generates it;
        json_schema constrains it to JSON valid against that schema."""
    def stream(
        self,
        prompt: str,
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        json_schema: Union[Dict[str, Any], str, None] = None,
    ) -> TextStream:
        """Like generate, yielding text pieces as they are decoded."""
    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        template: Optional[str] = None,
        json_schema: Union[Dict[str, Any], str, None] = None,
    ) -> str:
        """The assistant's answer to messages under the model's chat template (or template:
        a built-in name or a Jinja file)."""
    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> List[int]:
        """Token ids of text (by default as generate tokenizes its prompt)."""
    def detokenize(self, tokens: Sequence[int], show_special: bool = False) -> str:
        """The text of token ids."""
    def logits(self, tokens: Sequence[int]) -> npt.NDArray[np.float32]:
        """Logits of tokens as one sequence: float32, shape (len(tokens), n_vocab)."""
    def perplexity(
        self, text: str, ctx: int = 512, chunks: Optional[int] = None
    ) -> Perplexity:
        """Perplexity of text as `bitnet perplexity` computes it (needs 2*ctx tokens)."""
