"""What the Python trace SDK costs an agent: microseconds per span for a bare
``with span(...)``, a fully attributed LLM span and a decorated tool call (the
OpenTelemetry SDK's own cost alone, as a baseline), and how long ``end_trace``
takes to make a trace of N spans queryable in this kernel's store.

    python benchmarks/sdk_overhead.py [--spans 20000] [--trace-spans 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider

import halo_nb
from halo_nb.sdk import end_trace, span, start_trace


def per_span_us(label: str, spans: int, body: Callable[[], None]) -> None:
    best = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(spans):
            body()
        best.append((time.perf_counter() - start) / spans * 1e6)
    print(f"{label:<44} {min(best):8.1f} us/span  ({1e6 / min(best):9.0f} spans/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--trace-spans", type=int, default=200)
    args = parser.parse_args()
    halo_nb.configure(storage_path=tempfile.mkdtemp(prefix="halo-sdk-bench-"), port=0)

    baseline = TracerProvider().get_tracer("baseline")

    def otel_only() -> None:
        with baseline.start_as_current_span("step", attributes={"openinference.span.kind": "LLM"}):
            pass

    trace = start_trace("bench")

    def bare() -> None:
        with span(trace, name="step"):
            pass

    def llm() -> None:
        with span(trace, name="chat", type="llm", model="gpt-4o-mini",
                  input=[{"role": "user", "content": "x" * 400}]) as s:
            s.record_tokens(input_tokens=812, output_tokens=64).set_finish_reason("stop")
            s.set_output("y" * 400)

    @span(type="tool")
    def search(query: str, k: int = 5) -> list[str]:
        return [query] * k

    per_span_us("OpenTelemetry SDK alone (no processor)", args.spans, otel_only)
    per_span_us("halo span(), no attributes", args.spans, bare)
    per_span_us("halo LLM span (model, tokens, 400 B in/out)", args.spans, llm)
    per_span_us("halo @span(type='tool') decorated call", args.spans, lambda: search("q"))
    end_trace(trace)

    latencies = []
    for _ in range(20):
        run = start_trace("queryable")
        for _ in range(args.trace_spans - 1):
            llm_span = span(run, name="chat", type="llm", model="m")
            with llm_span as s:
                s.record_tokens(input_tokens=10, output_tokens=5).set_output("z" * 400)
        start = time.perf_counter()
        end_trace(run)
        latencies.append((time.perf_counter() - start) * 1e3)
        assert halo_nb.spans(run.trace_id).height >= 1
    print(f"end_trace → queryable, {args.trace_spans}-span trace: "
          f"median {statistics.median(latencies):.2f} ms, max {max(latencies):.2f} ms")
    print(f"spans stored: {len(halo_nb.store())}")


if __name__ == "__main__":
    main()
