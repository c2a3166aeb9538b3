"""The collector's public name: ``halo_nb.collector.Collector`` is the OTLP/HTTP server
thread of ``halo_nb.ingest.server``."""

from .ingest.server import Collector, CollectorError

__all__ = ["Collector", "CollectorError"]
