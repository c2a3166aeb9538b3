"""Polars frames → Arrow IPC stream bytes the front end decodes with apache-arrow.

The browser gets plain types only: numbers as float64 with nulls as NaN (JavaScript has
no int64 without BigInt), text as utf8, lists of text as list<utf8>, so the decoder needs
no dictionary, view or 64-bit-offset support.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

_NUMERIC = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
            pl.Float32, pl.Float64, pl.Boolean)


def _plain(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, _NUMERIC):
        return column.cast(pl.Float64).fill_null(float("nan"))
    if isinstance(dtype, pl.List):
        return column.cast(pl.List(pl.String))
    return column.cast(pl.String)


def _narrow(field_type: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(field_type) or pa.types.is_string_view(field_type):
        return pa.string()
    if pa.types.is_large_list(field_type) or pa.types.is_list(field_type):
        return pa.list_(_narrow(field_type.value_type))
    return field_type


def frame_to_ipc(frame: pl.DataFrame) -> bytes:
    """One Arrow IPC stream with the frame's rows, in the plain types above."""
    plain = frame.select(_plain(name, dtype) for name, dtype in frame.schema.items())
    table = plain.to_arrow(compat_level=pl.CompatLevel.oldest())
    schema = pa.schema([pa.field(f.name, _narrow(f.type)) for f in table.schema])
    table = table.cast(schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
