"""The analysis past one machine, on Dask distributed (the ``distributed`` extra):
``analyze_sources`` reads many stores and snapshots as one corpus, shuffles spans by
trace id, computes the corpus statistics in a first pass, maps the engine over
partitions of whole traces and reduces on the driver — the same AnalysisResult as the
single-process ``analyze_frame``. Never imported by the default, in-kernel path."""

from .driver import analyze_sources

__all__ = ["analyze_sources"]
