"""The RLM analysis engine: span graph -> recursive walk -> findings -> cross-trace
clusters -> hypotheses, with narratives phrased by a local model.

Entry point: ``analyze_frame(spans, settings)``; plugin API: ``detector``, ``Hit``.
"""

from __future__ import annotations

from .engine import analyze_frame
from .registry import Detector, Hit, detector, register, registered, reload_plugins, unregister
from .result import AnalysisResult

__all__ = ["AnalysisResult", "Detector", "Hit", "analyze_frame", "detector", "register",
           "registered", "reload_plugins", "unregister"]
