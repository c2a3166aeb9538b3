"""A labelled corpus spread the way a team's traces are: two storage folders written by
two collectors (real SpanStores, several Parquet parts each) and a snapshot file. A
quarter of the traces have their spans split between the two stores (a trace's spans
reached different collectors), and some spans reached both (an exporter's retry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from evaluation.corpus import generate
from halo_nb.interchange.snapshot import export_snapshot
from halo_nb.storage.store import SpanStore


@dataclass(frozen=True)
class SplitCorpus:
    sources: list[str]  # store a, store b, the snapshot
    split_trace_ids: list[str]  # traces with spans in both stores
    spans: int


def write_split_corpus(folder: Path, traces: int = 400, seed: int = 11) -> SplitCorpus:
    spans = generate(traces, seed=seed, pad_to=12).spans.with_row_index("i")
    ids = spans["trace_id"].unique(maintain_order=True).to_list()
    split, in_a, in_b, in_snapshot = ids[0::4], ids[1::4], ids[2::4], ids[3::4]
    odd = pl.col("i") % 2 == 1
    of = pl.col("trace_id").is_in
    store_a = spans.filter(of(in_a) | (of(split) & odd))
    store_b = spans.filter(of(in_b) | (of(split) & ~odd))
    retried = spans.filter(of(in_a[::2])).group_by("trace_id", maintain_order=True).first()
    store_b = pl.concat([store_b, retried.select(store_b.columns)])
    for name, frame in (("a", store_a), ("b", store_b)):
        with SpanStore(folder / name) as store:
            for chunk in frame.drop("i").iter_slices(700):
                store.append(chunk)
                store.flush()
    snapshot = folder / "team.json"
    with SpanStore(None) as store:
        store.append(spans.filter(of(in_snapshot)).drop("i"))
        export_snapshot(store, in_snapshot, snapshot)
    return SplitCorpus([str(folder / "a"), str(folder / "b"), str(snapshot)], split,
                       spans.height)
