"""OpenTelemetry SDK span objects (``ReadableSpan``) → one span-frame batch.

The OTLP decoder turns wire bytes into the frame; this turns the SDK's in-memory
spans into the same frame through the same ``SpanFrameBuilder``, so spans the
halo SDK records in this kernel reach the store without a network hop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl
from opentelemetry.sdk.trace import ReadableSpan

from .frame_builder import SpanFrameBuilder


def readable_spans_to_frame(spans: Iterable[ReadableSpan], origin: str | None = None
                            ) -> pl.DataFrame:
    """One span-frame row per finished (or unfinished) SDK span."""
    builder = SpanFrameBuilder()
    for span in spans:
        context = span.context
        parent = span.parent
        scope = span.instrumentation_scope
        trace_state = context.trace_state.to_header() if context.trace_state else None
        builder.add(
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
            name=span.name,
            start_ns=span.start_time or 0,
            end_ns=span.end_time,
            status_code=span.status.status_code.value,
            status_message=span.status.description,
            attributes=_plain(span.attributes),
            events=[
                {"name": event.name, "time_ns": event.timestamp,
                 "attributes": _plain(event.attributes)}
                for event in span.events
            ],
            links=[
                {"trace_id": format(link.context.trace_id, "032x"),
                 "span_id": format(link.context.span_id, "016x"),
                 "trace_state": link.context.trace_state.to_header()
                 if link.context.trace_state else "",
                 "attributes": _plain(link.attributes)}
                for link in span.links
            ],
            resource=_plain(span.resource.attributes),
            otel_kind=span.kind.name.lower(),  # as the OTLP decoder writes it
            trace_state=trace_state,
            scope_name=scope.name if scope is not None else None,
            scope_version=scope.version if scope is not None else None,
            origin=origin,
        )
    return builder.build()


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attribute values as JSON-ready Python values (the SDK stores sequences as tuples)."""
    if not attributes:
        return {}
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in attributes.items()}
