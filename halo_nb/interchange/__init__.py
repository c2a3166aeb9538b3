"""Interchange: what leaves or enters the store as a file or a request — snapshots
(portable JSON), replay to an OTLP endpoint, span-tree compare, and the CI check."""
