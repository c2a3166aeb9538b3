"""The halo_nb sample research agent: a tool-calling loop over an OpenAI-compatible
endpoint (the bundled local model by default), traced with the halo_nb SDK or with the
OpenInference OpenAI instrumentor.

    from halo_nb.examples.research_agent import run_batch
    report = run_batch(size=16)                                # baseline: retry loop
    report = run_batch(size=16, reformulate_on_empty=True)     # the fix
"""

from .agent import AgentConfig, AgentRun, ResearchAgent, Search
from .batch import QUERIES, BatchReport, openinference_tracing, run_batch
from .llm_server import Endpoint, LocalModelServer, endpoint_from_env
from .search import WEB_SEARCH_TOOL, SimulatedSearch, broaden
from .tracing import HaloRecorder, OpenInferenceRecorder

__all__ = [
    "QUERIES", "WEB_SEARCH_TOOL", "AgentConfig", "AgentRun", "BatchReport", "Endpoint",
    "HaloRecorder", "LocalModelServer", "OpenInferenceRecorder", "ResearchAgent", "Search",
    "SimulatedSearch", "broaden", "endpoint_from_env", "openinference_tracing", "run_batch",
]
