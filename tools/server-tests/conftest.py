"""Shared fixtures for the server tests.

The suite talks to a running `bitnet serve`; the Rust integration test
(crates/bitnet-cli/tests/serve_openai.rs) starts one and passes its address here:
  BITNET_SERVER_URL  http://127.0.0.1:PORT (required)
  BITNET_API_KEY     the key the server was started with (optional)
  BITNET_SERVER_CTX  the server's --ctx (for the too-long-prompt test)
"""

import os

import httpx
import openai
import pytest


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests through "
                    "`cargo test -p bitnet-cli --test serve_openai`", returncode=2)
    return value


@pytest.fixture(scope="session")
def base_url():
    return _env("BITNET_SERVER_URL").rstrip("/")


@pytest.fixture(scope="session")
def api_key():
    return os.environ.get("BITNET_API_KEY") or None


@pytest.fixture(scope="session")
def auth_headers(api_key):
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@pytest.fixture(scope="session")
def http(base_url, auth_headers):
    with httpx.Client(base_url=base_url, headers=auth_headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def client(base_url, api_key):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key or "unused",
                         max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def model_id(http):
    models = http.get("/v1/models").json()
    return models["data"][0]["id"]
