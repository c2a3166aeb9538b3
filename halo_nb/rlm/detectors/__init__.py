"""The built-in detectors, one module per family. Importing this package registers them."""

from . import (  # noqa: F401
    completion,
    context,
    declared,
    errors,
    failure_words,
    integrity,
    loops,
    outliers,
    retry,
    tool_results,
)
