"""Ingestion: OTLP/HTTP bytes or SDK spans in, span-frame batches out.

``server`` (the collector thread: HTTP, limits, OTLP status codes), ``otlp`` (protobuf and
JSON decoding: the native ``_wire`` decoder and the Python reference beside it),
``frame_builder`` (the reference's rows → span frame), ``span_batch`` (what the collector
hands the store), ``otel_spans`` (the SDK's ReadableSpans), and ``rules``: the attribute
rulebook both decoders read (docs/architecture.md).
"""
