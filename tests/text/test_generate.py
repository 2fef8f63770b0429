"""Generation interface: cache keys, the on-disk cache, the HTTP backend."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tamis.text.generate import (
    CachedGenerator,
    GenerationCache,
    GenerationError,
    GenerationParams,
    OpenAIGenerator,
    build_generator,
    cache_key,
)


class EchoGenerator:
    """A backend that upper-cases prompts and records every call."""

    model_id = "echo"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        return [p.upper() for p in prompts]


def test_cache_key_depends_on_model_prompt_and_params():
    p = GenerationParams()
    base = cache_key("m", "hello", p)
    assert base == cache_key("m", "hello", GenerationParams())
    assert base != cache_key("m2", "hello", p)
    assert base != cache_key("m", "hello!", p)
    assert base != cache_key("m", "hello", GenerationParams(temperature=0.5))
    assert base != cache_key("m", "hello", GenerationParams(max_new_tokens=7))


def test_params_reject_bad_values():
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        GenerationParams(top_p=0)


def test_cached_generator_generates_only_misses_and_resumes(tmp_path):
    path = tmp_path / "gen.jsonl"
    backend = EchoGenerator()
    gen = CachedGenerator(
        backend, GenerationCache(path), chunk_size=2, show_progress=False
    )
    params = GenerationParams()
    assert gen.generate(["a", "b", "a", "c"], params) == ["A", "B", "A", "C"]
    # Duplicates are generated once; chunks of 2 -> two backend calls.
    assert backend.calls == [["a", "b"], ["c"]]
    assert (gen.hits, gen.misses) == (1, 3)

    # A new process reading the same file generates only the new prompt.
    backend2 = EchoGenerator()
    gen2 = CachedGenerator(backend2, GenerationCache(path), show_progress=False)
    assert gen2.generate(["c", "d"], params) == ["C", "D"]
    assert backend2.calls == [["d"]]


def test_cache_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "gen.jsonl"
    cache = GenerationCache(path)
    cache.put_many([("k1", "m", "p", "out1")])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "k2", "output": "tor')  # killed mid-write
    reloaded = GenerationCache(path)
    assert len(reloaded) == 1 and reloaded.get("k1") == "out1"
    assert reloaded.get("k2") is None


class _Server:
    """A local OpenAI-compatible endpoint with scripted failures."""

    def __init__(self, fail_first: int = 0, status: int = 500, delay: float = 0.0):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.active = 0
        self.max_active = 0
        self.fail_left = fail_first
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                    fail = outer.fail_left > 0
                    outer.fail_left -= int(fail)
                time.sleep(delay)
                with lock:
                    outer.active -= 1
                if fail:
                    self.send_response(status)
                    self.end_headers()
                    return
                prompt = body["messages"][-1]["content"]
                reply = {"choices": [{"message": {"content": f" re:{prompt} "}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_backend_keeps_order_runs_concurrently_and_sends_params(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "secret")
    with _Server(delay=0.2) as server:
        gen = OpenAIGenerator(
            server.url,
            "served-model",
            api_key_env="TEST_KEY",
            concurrency=4,
            backoff=0.01,
        )
        prompts = [f"p{i}" for i in range(8)]
        params = GenerationParams(max_new_tokens=9, temperature=0.0, system="sys")
        out = gen.generate(prompts, params)
    assert out == [f"re:p{i}" for i in range(8)]
    assert server.max_active > 1  # requests overlapped
    body = server.requests[0]
    assert body["model"] == "served-model" and body["max_tokens"] == 9
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert server.headers[0]["Authorization"] == "Bearer secret"


def test_openai_backend_retries_server_errors():
    with _Server(fail_first=2, status=503) as server:
        gen = OpenAIGenerator(
            server.url,
            "m",
            api_key_env=None,
            concurrency=1,
            max_retries=3,
            backoff=0.01,
        )
        assert gen.generate(["x"], GenerationParams()) == ["re:x"]
    assert len(server.requests) == 3


def test_openai_backend_gives_up_on_client_errors_and_after_retries():
    with _Server(fail_first=1, status=400) as server:
        gen = OpenAIGenerator(server.url, "m", api_key_env=None, backoff=0.01)
        with pytest.raises(GenerationError, match="HTTP 400"):
            gen.generate(["x"], GenerationParams())
        assert len(server.requests) == 1
    with _Server(fail_first=5, status=500) as server:
        gen = OpenAIGenerator(
            server.url, "m", api_key_env=None, max_retries=1, backoff=0.01
        )
        with pytest.raises(GenerationError, match="HTTP 500"):
            gen.generate(["x"], GenerationParams())
        assert len(server.requests) == 2


def test_openai_backend_through_the_cache(tmp_path):
    with _Server() as server:
        gen = CachedGenerator(
            OpenAIGenerator(server.url, "m", api_key_env=None),
            GenerationCache(tmp_path / "c.jsonl"),
            show_progress=False,
        )
        params = GenerationParams()
        assert gen.generate(["a", "b"], params) == ["re:a", "re:b"]
        assert gen.generate(["b", "a"], params) == ["re:b", "re:a"]
    assert len(server.requests) == 2


def test_build_generator_validates():
    with pytest.raises(ValueError, match="unknown generation backend"):
        build_generator("magic")
    with pytest.raises(ValueError, match="base_url and model"):
        build_generator("openai", model="m")


@pytest.mark.slow
def test_packaged_smollm2_generates_deterministically_when_greedy():
    from tamis.text.generate import TransformersGenerator

    gen = TransformersGenerator(device="cpu", batch_size=2)
    params = GenerationParams(max_new_tokens=4)
    prompts = ["Name a fruit.", "Say hello in French, please."]
    first = gen.generate(prompts, params)
    assert len(first) == 2 and all(isinstance(t, str) and t for t in first)
    # Batched (left-padded) and single-prompt greedy decoding agree.
    assert gen.generate(prompts[1:], params) == first[1:]
