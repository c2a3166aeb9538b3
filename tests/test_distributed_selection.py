"""The distributed corpus statistics (halo_nb.distributed.selection) without a cluster:
on adversarial samples spread over several sample files, the selection gives exactly the
single-process outlier table (prepare.outlier_table): the same medians, MADs, spreads and
counts to the last bit, whether values are gathered at once or narrowed digit by digit."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from halo_nb.distributed.selection import (
    Label,
    Queries,
    key_value,
    order_keys,
    outlier_tables,
    scan_samples,
    write_samples,
)
from halo_nb.rlm.prepare import deviation_sum, mean_of, outlier_table

TINY = 5e-324
rng = np.random.default_rng(15)
ADVERSARIAL = {
    "one": [4.5],
    "two": [1.0, 2.0],
    "all equal": [7.25] * 40,
    "ties odd": [1.0, 2.0, 2.0, 2.0, 3.0, 9.0, 9.0],
    "ties even": [5.0, 5.0, 6.0, 6.0, 6.0, 6.0, 8.0, 1e9],
    "negatives": [-3.5, -1e-3, -2e10, -7.0, -7.0, 4.0],
    "zeros": [0.0, 0.0, 0.0, 1.0, -1.0, 0.0],
    "mostly zeros": [0.0] * 30 + [0.1, 0.7, 123.456, 1e-9, 2.5e7],
    "huge range": [-1.7976931348623157e308, 1.7976931348623157e308, 1e308, 1.5e308, -1e-300],
    "huge even": [1e308, 1.5e308],
    "subnormal": [TINY, 2 * TINY, 3 * TINY, 0.0],
    "last bit": list(np.nextafter(1.0, 2.0, dtype=np.float64) ** np.arange(9)),
    "last bit even": [1.0, float(np.nextafter(1.0, 2.0)), 1.0, float(np.nextafter(1.0, 0.0))],
    "infinite": [1.0, 2.0, np.inf, np.inf, -np.inf],
    "nan": [np.nan, 1.0, 2.0, 3.0],
    "nan middle": [np.nan, np.nan, 1.0],
    "most equal float": [1.1] * 60 + list(rng.lognormal(0, 3, 50)),
    "lognormal": list(rng.lognormal(3, 2, 5_001)),
    "integers": list(rng.integers(0, 40, 4_000).astype(float)),
    "decimals": list(np.round(rng.normal(0, 100, 3_000), 1)),
}


def _tables(values: dict[str | None, list[float]], folder: Path, files: int,
            gather: int) -> dict[str, pl.DataFrame]:
    """The selection's tables for ``values`` (the latency samples per group; their
    halves, the token samples) written at random over ``files`` sample files."""
    frames = []
    for stat, scale in (("lat", 1.0), ("tok", 0.5)):
        for group, samples in values.items():
            frames.append(pl.DataFrame({"stat": stat, "group": group,
                                        "value": np.array(samples) * scale,
                                        "file": rng.integers(0, files, len(samples))},
                                       schema_overrides={"group": pl.String}))
    rows = pl.concat(frames)
    paths = []
    for (file,), part in rows.partition_by("file", as_dict=True).items():
        path = folder / f"{file}.arrow"
        write_samples(part.group_by("stat", "group", maintain_order=True).agg("value"), path)
        paths.append(str(path))
    counts: dict[Label, int] = {
        (stat, group): n for stat, group, n in rows.group_by("stat", "group").len().iter_rows()}
    shards = [paths[0::2], paths[1::2]]

    def scan(queries: Queries) -> list[dict]:  # through pickle, as to and from workers
        return pickle.loads(pickle.dumps([scan_samples(shard, pickle.loads(pickle.dumps(
            queries))) for shard in shards]))

    return outlier_tables(counts, scan, gather=gather)


def _single(values: dict[str | None, list[float]], stat: str, scale: float) -> pl.DataFrame:
    frame = pl.concat([pl.DataFrame({"group": group, "value": np.array(samples) * scale},
                                    schema_overrides={"group": pl.String})
                       for group, samples in values.items()])
    return outlier_table(frame, stat)


@pytest.mark.parametrize("gather", [0, 3, 1 << 20], ids=["narrowed", "mixed", "gathered"])
@pytest.mark.parametrize("files", [1, 5])
def test_selection_gives_the_single_process_table(tmp_path: Path, gather: int,
                                                  files: int) -> None:
    tables = _tables(ADVERSARIAL, tmp_path, files, gather)
    for stat, scale in (("lat", 1.0), ("tok", 0.5)):
        assert_frame_equal(tables[stat], _single(ADVERSARIAL, stat, scale),
                           check_row_order=False, check_exact=True)


def test_median_and_mad_are_polars_to_the_last_bit(tmp_path: Path) -> None:
    values = {name: samples for name, samples in ADVERSARIAL.items() if "nan" not in name}
    table = _tables(values, tmp_path, 3, gather=0)["lat"]
    for name, samples in values.items():
        x = pl.Series(samples, dtype=pl.Float64)
        row = table.row(by_predicate=pl.col("group") == name, named=True)
        assert row["lat_median"] == x.median()
        mad = (x - x.median()).abs().median()
        if mad > 0:
            assert row["lat_spread"] == mad * 1.4826
        # numpy's median, (a + b) / 2, can differ from polars' a + (b - a) / 2 in the last
        # bit, and overflows where a + b does
        with np.errstate(over="ignore"):
            numpy_median = np.median(samples)
        if np.isfinite(numpy_median):
            assert abs(row["lat_median"] - numpy_median) <= np.spacing(abs(numpy_median))


def test_a_null_group_is_a_label_like_any_other(tmp_path: Path) -> None:
    values = {None: [3.0, 1.0, 2.0, 10.0], "named": [1.0]}
    tables = _tables(values, tmp_path, 2, gather=0)
    assert_frame_equal(tables["lat"], _single(values, "lat", 1.0), check_row_order=False,
                       check_exact=True)


def test_order_keys_sort_floats_as_polars_does() -> None:
    values = np.array([np.nan, np.inf, 1e308, 1.0, TINY, 0.0, -TINY, -1.0, -1e308, -np.inf,
                       float(np.nextafter(1.0, 2.0))])
    keys = order_keys(values)
    ordered = [key_value(int(k)) for k in np.sort(keys)]
    assert ordered[:-1] == pl.Series(values).sort()[:-1].to_list()
    assert np.isnan(key_value(int(keys.max())))
    assert order_keys(np.array([-np.nan]))[0] == order_keys(np.array([np.nan]))[0]


def test_deviation_sums_of_parts_add_up_to_the_exact_sum() -> None:
    values = np.concatenate([rng.lognormal(0, 5, 10_000), [TINY, 1e300, 0.0]])
    parts = [deviation_sum(part) for part in np.array_split(values, 7)]
    total = (sum((p[0] for p in parts), Fraction(0)), sum(p[1] for p in parts))
    exact = sum(map(Fraction, values.tolist()), Fraction(0))
    assert total == (exact, 0.0)
    assert mean_of(total, len(values)) == float(exact / len(values))
    assert mean_of(deviation_sum(np.array([1.0, np.inf])), 2) == np.inf
    assert np.isnan(mean_of(deviation_sum(np.array([np.inf, np.nan])), 2))
