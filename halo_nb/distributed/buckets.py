"""Hash partitioning through scratch files: a frame split into buckets by a key, written
as one Arrow IPC file (LZ4) with its record batches grouped by bucket, so a reader takes
exactly its bucket's batches from each file and never a whole file.

This is the shuffle of the distributed analysis: every span of a trace lands in the same
bucket whichever source it came from. Files live in a scratch folder every worker can
read (a local folder for a local cluster, a shared mount for a cluster of machines).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

# Bucket of a row: the key's 64-bit hash modulo the bucket count. Polars' hash is the
# same in every process of one installation (a cluster runs one environment).
_SEED = 0x4A10

# (file, record batch indices) of one bucket in one scratch file
BucketInput = tuple[str, list[int]]


def bucket_of(key: pl.Expr, buckets: int) -> pl.Expr:
    """The bucket number (0..buckets-1) of each row's ``key``."""
    return (key.hash(seed=_SEED) % buckets).cast(pl.Int64)


def write_buckets(frame: pl.DataFrame, bucket: pl.Expr, path: Path) -> dict[int, list[int]]:
    """Write ``frame`` to ``path`` grouped by ``bucket`` (rows keep their order within a
    bucket); returns each non-empty bucket's record batch indices."""
    keyed = frame.with_columns(bucket.alias("_bucket"))
    parts = keyed.partition_by("_bucket", maintain_order=True, include_key=False, as_dict=True)
    index: dict[int, list[int]] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    schema = keyed.drop("_bucket").to_arrow().schema
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as out:
        written = 0
        for (key,), part in sorted(parts.items()):
            batches = part.to_arrow().cast(schema).combine_chunks().to_batches()
            for batch in batches:
                out.write_batch(batch)
            index[int(key)] = list(range(written, written + len(batches)))
            written += len(batches)
    temp.replace(path)
    return index


def read_buckets(inputs: Sequence[BucketInput]) -> pl.DataFrame | None:
    """One bucket's rows from its scratch files, in the order of ``inputs``; None when
    there are none."""
    tables = []
    for path, batches in inputs:
        with pa.OSFile(path, "rb") as source:  # reads only these batches, into owned memory
            reader = pa.ipc.open_file(source)
            tables.append(pa.Table.from_batches([reader.get_batch(i) for i in batches],
                                                schema=reader.schema))
    return pl.DataFrame(pa.concat_tables(tables)) if tables else None
