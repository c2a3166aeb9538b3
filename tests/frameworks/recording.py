"""Record the framework corpus: run each library's agent (runners/, node/) against the mock
model, receive its spans over OTLP/HTTP, and write one OTLP JSON file per scenario plus
the libraries' versions (tests/fixtures/frameworks/)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .mock_openai import MockOpenAI
from .otlp_sink import OTLPSink
from .scenarios import CITIES, QUESTION, SCRIPTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "frameworks"
FRAMEWORKS_PYTHON = REPO / ".venv-frameworks" / "bin" / "python"
NODE_PROJECT = HERE / "node"
RUNS_PER_SCENARIO = 5
RUNNER_TIMEOUT_S = 300


@dataclass(frozen=True)
class Library:
    """One instrumentation library: the command that runs its agent and the packages
    whose versions the corpus notes."""
    name: str
    title: str
    runner: str
    packages: tuple[str, ...]

    @property
    def is_node(self) -> bool:
        return self.runner.endswith(".mjs")


LIBRARIES: tuple[Library, ...] = (
    Library("openinference_openai", "OpenInference openai", "openinference_openai.py",
            ("openai", "openinference-instrumentation-openai", "openinference-instrumentation")),
    Library("openai_v2", "opentelemetry-instrumentation-openai-v2 (GenAI)", "openai_v2.py",
            ("openai", "opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai")),
    Library("traceloop", "traceloop-sdk", "traceloop_agent.py",
            ("openai", "traceloop-sdk", "opentelemetry-instrumentation-openai")),
    Library("langgraph", "LangGraph + OpenInference langchain", "langgraph_agent.py",
            ("langgraph", "langchain-openai", "openinference-instrumentation-langchain")),
    Library("openai_agents", "openai-agents + OpenInference", "openai_agents.py",
            ("openai-agents", "openinference-instrumentation-openai-agents")),
    Library("pydantic_ai", "pydantic-ai (built-in OTel)", "pydantic_ai_agent.py",
            ("pydantic-ai-slim",)),
    Library("node_openinference", "Node sdk-node + OpenInference openai", "agent.mjs",
            ("openai", "@arizeai/openinference-instrumentation-openai",
             "@arizeai/openinference-core", "@opentelemetry/sdk-node")),
)
BY_NAME = {library.name: library for library in LIBRARIES}


def questions(runs: int = RUNS_PER_SCENARIO) -> list[str]:
    return [QUESTION.format(city=city) for city in CITIES[:runs]]


def _command(library: Library, base_url: str, otlp: str, scenario: str,
             runs: int) -> list[str]:
    script = (NODE_PROJECT if library.is_node else HERE / "runners") / library.runner
    program = ["node"] if library.is_node else [str(FRAMEWORKS_PYTHON)]
    return [*program, str(script), "--base-url", base_url, "--otlp", otlp,
            "--scenario", scenario, "--questions", json.dumps(questions(runs))]


def record(library: Library, scenarios: tuple[str, ...] = tuple(SCRIPTS),
           runs: int = RUNS_PER_SCENARIO) -> dict[str, dict]:
    """Run ``library``'s agent ``runs`` times per scenario; scenario -> OTLP JSON request.
    Raises RuntimeError with the runner's output when it fails."""
    mock, sink = MockOpenAI(), OTLPSink()
    try:
        recorded = {}
        for scenario in scenarios:
            done = subprocess.run(_command(library, mock.url(scenario), sink.url, scenario, runs),
                                  capture_output=True, text=True, timeout=RUNNER_TIMEOUT_S,
                                  cwd=REPO)
            if done.returncode != 0:
                raise RuntimeError(f"{library.name}/{scenario} runner failed "
                                   f"({done.returncode}):\n{done.stdout}\n{done.stderr}")
            recorded[scenario] = {"resourceSpans": sink.take()}
        return recorded
    finally:
        mock.close()
        sink.close()


def versions(library: Library) -> dict[str, str]:
    """Installed versions of the library's packages (its environment, not this one's)."""
    if library.is_node:
        found = {}
        for package in library.packages:
            manifest = NODE_PROJECT / "node_modules" / package / "package.json"
            found[package] = json.loads(manifest.read_text())["version"]
        return found
    code = ("import json, sys; from importlib.metadata import version; "
            "print(json.dumps({p: version(p) for p in sys.argv[1:]}))")
    out = subprocess.run([str(FRAMEWORKS_PYTHON), "-c", code, *library.packages],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _runtime(library: Library) -> str:
    program = ["node"] if library.is_node else [str(FRAMEWORKS_PYTHON)]
    out = subprocess.run([*program, "--version"], capture_output=True, text=True, check=True)
    return f"{'node' if library.is_node else 'python'} {out.stdout.strip().split()[-1]}"


def write(library: Library, recorded: dict[str, dict], root: Path = FIXTURES) -> list[Path]:
    """The recordings as <root>/<library>/<scenario>.json, and the versions note."""
    folder = root / library.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for scenario, request in recorded.items():
        path = folder / f"{scenario}.json"
        path.write_text(json.dumps(request, sort_keys=True, separators=(",", ":")) + "\n")
        paths.append(path)
    note = root / "versions.json"
    notes = json.loads(note.read_text()) if note.exists() else {}
    notes[library.name] = {"title": library.title, "packages": versions(library),
                           "runtime": _runtime(library)}
    note.write_text(json.dumps(dict(sorted(notes.items())), indent=2) + "\n")
    return paths
