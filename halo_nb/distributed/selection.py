"""The corpus' outlier statistics (per label: exact median, MAD, spread; see
prepare.outlier_table) with memory per task bounded whatever the corpus size.

The single-process path sorts each label's samples in one frame; a label with millions
of samples (the LLM calls of a large corpus) would then need them all in one task. Here
the samples stay in their sample files, one per trace bucket, and every pass reads them
one file at a time: an exact selection by histogram narrowing. Each float maps to an
order-preserving 64-bit key; a pass counts a label's samples by the next 16 bits of their
key under the prefix fixed so far, the driver sums the counts and keeps the prefix that
holds the wanted rank, until at most ``gather`` samples remain under it; those are
gathered and the rank taken exactly. The median takes the middle rank(s) as polars does
(two middle values a <= b give a + (b - a) * 0.5); the MAD is the same selection over
|x - median|; where the MAD is not above 0 the spread needs the mean absolute deviation,
summed exactly (prepare.deviation_sum). The numbers are those of the single-process path
to the last bit. A task holds one sample file and at most BUDGET bytes of counts and
gathered keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from ..rlm.prepare import deviation_sum, mean_of, spread_table

LATENCY, TOKENS = "lat", "tok"  # the statistics: latency per lat_group, tokens per label
Label = tuple[str, str | None]  # (statistic, group)
DIGIT_BITS = 16
DIGITS = 64 // DIGIT_BITS
GATHER = 1 << 20  # candidates of a rank gathered at once (8 MB of keys)
BUDGET = 64 << 20  # bytes of counts and gathered keys one pass task may hold
_BINS = 1 << DIGIT_BITS
_SIGN = np.uint64(1 << 63)


@dataclass(frozen=True)
class Query:
    """What a pass asks of one label's samples (or of |sample - center|, the center given
    by its order key: a NaN would not equal itself): their count by the next digit of the
    key under ``prefix`` (``depth`` digits), the keys themselves under ``prefix``, or their
    deviation_sum."""

    center: int | None
    action: Literal["count", "gather", "sum"]
    depth: int = 0
    prefix: int = 0


Queries = Mapping[Label, Sequence[Query]]
# runs scan_samples over every shard of the sample files; one result per shard
Scanner = Callable[[Queries], Sequence[dict[tuple[Label, Query], Any]]]


def write_samples(samples: pl.DataFrame, path: Path) -> None:
    """One trace bucket's samples (columns stat, group, value: a list of floats per
    label) as a sample file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples.write_ipc(path, compression="lz4")


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order polars sorts float64 values (every NaN last)."""
    bits = np.where(np.isnan(values), np.nan, values).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_value(key: int) -> float:
    """The float64 whose order key is ``key``."""
    bits = np.uint64(key)
    return float((bits ^ _SIGN if bits & _SIGN else ~bits).view(np.float64))


def scan_samples(paths: Sequence[str], queries: Queries) -> dict[tuple[Label, Query], Any]:
    """The task of one pass over a shard of sample files, read one at a time: per query
    the counts (int64 per digit), the gathered keys or the deviation_sum."""
    found: dict[tuple[Label, Query], Any] = {}
    for path in paths:
        for label, values in _label_samples(path):
            for query in queries.get(label, ()):
                with np.errstate(over="ignore", invalid="ignore"):  # inf / nan, as in polars
                    x = (values if query.center is None
                         else np.abs(values - key_value(query.center)))
                found[label, query] = _combine(query, found.get((label, query)),
                                               _answer(query, x))
    return found


def outlier_tables(counts: Mapping[Label, int], scan: Scanner,
                   gather: int = GATHER) -> dict[str, pl.DataFrame]:
    """The outlier table (prepare.outlier_table) of each statistic for labels with these
    sample counts, through passes of ``scan``."""
    middle = {label: [(n - 1) // 2, n // 2] for label, n in counts.items()}
    values = _select(middle, dict.fromkeys(counts), counts, scan, gather)
    medians = {label: _median(values, label, ranks) for label, ranks in middle.items()}
    centers = {label: int(order_keys(np.array([m]))[0]) for label, m in medians.items()}
    deviations = _select(middle, centers, counts, scan, gather)
    mads = {label: _median(deviations, label, ranks) for label, ranks in middle.items()}
    sums: dict[tuple[Label, Query], Any] = {}
    for group in _groups({(label, Query(centers[label], "sum")): 0
                          for label in counts if not mads[label] > 0}):
        sums.update(_merged(scan(group)))
    tables = {}
    for stat in (LATENCY, TOKENS):
        labels = [label for label in counts if label[0] == stat]
        table = pl.DataFrame({"group": [group for _, group in labels],
                              "median": [medians[label] for label in labels],
                              "mad": [mads[label] for label in labels],
                              "n": [counts[label] for label in labels]},
                             schema={"group": pl.String, "median": pl.Float64,
                                     "mad": pl.Float64, "n": pl.Int64})
        means = [(label[1], mean_of(total, counts[label]))
                 for (label, _), total in sums.items() if label[0] == stat]
        tables[stat] = spread_table(table, means, stat)
    return tables


def _select(ranks: Mapping[Label, list[int]], centers: Mapping[Label, int | None],
            counts: Mapping[Label, int], scan: Scanner,
            gather: int) -> dict[tuple[Label, int], float]:
    """The value at each rank of each label's samples (or of |sample - center|)."""
    # per (label, rank): digits fixed, the prefix, the rank under it, samples under it
    state = {(label, rank): (0, 0, rank, counts[label])
             for label, wanted in ranks.items() for rank in wanted}
    found: dict[tuple[Label, int], float] = {}
    while state:
        waiting: dict[tuple[Label, Query], list[tuple[Label, int]]] = {}
        sizes: dict[tuple[Label, Query], int] = {}
        for target, (depth, prefix, _, left) in state.items():
            query = Query(centers[target[0]], "gather" if left <= gather else "count",
                          depth, prefix)
            waiting.setdefault((target[0], query), []).append(target)
            sizes[target[0], query] = 8 * (left if query.action == "gather" else _BINS)
        for group in _groups(sizes):
            results = _merged(scan(group))
            for label, query in ((label, q) for label, asked in group.items() for q in asked):
                got = results[label, query]
                if query.action == "gather":
                    got = np.concatenate(got)
                for target in waiting[label, query]:
                    depth, prefix, rank, _ = state.pop(target)
                    if query.action == "gather":
                        found[target] = key_value(int(np.partition(got, rank)[rank]))
                        continue
                    below = np.cumsum(got)
                    digit = int(np.searchsorted(below, rank, side="right"))
                    rank -= int(below[digit - 1]) if digit else 0
                    depth, prefix = depth + 1, prefix << DIGIT_BITS | digit
                    if depth == DIGITS:
                        found[target] = key_value(prefix)
                    else:
                        state[target] = (depth, prefix, rank, int(got[digit]))
    return found


def _groups(sizes: Mapping[tuple[Label, Query], int]) -> Iterator[dict[Label, list[Query]]]:
    """The queries in groups of at most BUDGET bytes of answers."""
    group: dict[Label, list[Query]] = {}
    used = 0
    for (label, query), size in sizes.items():
        if group and used + size > BUDGET:
            yield group
            group, used = {}, 0
        group.setdefault(label, []).append(query)
        used += size
    if group:
        yield group


def _merged(shards: Sequence[dict[tuple[Label, Query], Any]]) -> dict[tuple[Label, Query], Any]:
    merged: dict[tuple[Label, Query], Any] = {}
    for shard in shards:
        for key, part in shard.items():
            merged[key] = _combine(key[1], merged.get(key), part)
    return merged


def _answer(query: Query, x: np.ndarray) -> Any:
    if query.action == "sum":
        return deviation_sum(x)
    keys = order_keys(x)
    if query.depth:
        keys = keys[keys >> np.uint64(64 - DIGIT_BITS * query.depth) == query.prefix]
    if query.action == "gather":
        return [keys]
    digits = keys >> np.uint64(64 - DIGIT_BITS * (query.depth + 1)) & np.uint64(_BINS - 1)
    return np.bincount(digits.astype(np.intp), minlength=_BINS)


def _combine(query: Query, total: Any, part: Any) -> Any:
    """Two answers to ``query`` as one: counts and sums add, gathered keys (lists of
    arrays) join."""
    if total is None:
        return part
    if query.action == "sum":
        return total[0] + part[0], total[1] + part[1]
    return total + part


def _median(values: Mapping[tuple[Label, int], float], label: Label, ranks: list[int]) -> float:
    lower, upper = (values[label, rank] for rank in ranks)
    return lower if lower == upper else lower + (upper - lower) * 0.5


def _label_samples(path: str) -> Iterator[tuple[Label, np.ndarray]]:
    samples = pl.read_ipc(path)
    flat = samples["value"].explode().to_numpy()
    lengths = samples["value"].list.len().to_numpy()
    ends = np.cumsum(lengths)
    for (stat, group), start, end in zip(samples.select("stat", "group").iter_rows(),
                                         (ends - lengths).tolist(), ends.tolist(), strict=True):
        yield (stat, group), flat[start:end]
