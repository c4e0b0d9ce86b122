"""Fixtures of the bitnet Python package's tests: the repository's files, the `bitnet` CLI built
from the same source (BITNET_BIN, set by scripts/test-python.sh), the cached real models, and the
loaded models (one per file, shared by the tests)."""

import os
import subprocess
from pathlib import Path

import pytest

import bitnet

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "bitnet-b158-kjv-29m.gguf"
TINY_B158 = REPO / "testdata" / "oracle" / "tiny-b158" / "gguf" / "tiny-b158-i2_s.gguf"
ALICE = REPO / "testdata" / "data" / "alice29.txt"


def cache_dir() -> Path:
    return Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache" / "bitnet-rs"))


def required(path: Path, how: str) -> Path:
    if not path.is_file():
        pytest.fail(f"missing test file {path}: {how}")
    return path


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `bitnet` binary built from this source tree."""
    value = os.environ.get("BITNET_BIN")
    if not value:
        pytest.fail("BITNET_BIN is not set: run the suite through scripts/test-python.sh")
    return required(Path(value), "build it with `cargo build --release -p bitnet-cli`")


def run_cli(cli: Path, *args: str, stdin: str = "") -> str:
    """Runs the CLI, returns its stdout; a failure shows its stderr."""
    done = subprocess.run(
        [str(cli), *args], input=stdin, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"bitnet {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def shipped() -> bitnet.Model:
    """The model shipped in the package (no path given)."""
    return bitnet.Model()


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return required(
        cache_dir() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf",
        "run scripts/fetch-test-data.sh (or set BITNET_CACHE)",
    )


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> bitnet.Model:
    return bitnet.Model(smollm2_path)


@pytest.fixture(scope="session")
def tiny_b158() -> bitnet.Model:
    return bitnet.Model(required(TINY_B158, "it is a fixture committed under testdata/"))
