"""SpanStore: dedupe, snapshots, trace summaries, live updates, persistence, retention."""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from otlp_factory import new_span_id, new_trace_id, protobuf_body, span

from halo_nb.ingest.otlp import decode_protobuf
from halo_nb.ingest.span_batch import SpanBatch
from halo_nb.schema import SPAN_SCHEMA
from halo_nb.storage.key_index import KeyIndex
from halo_nb.storage.parts import PartFolder
from halo_nb.storage.store import SpanStore, UnknownTraceError

store_module = importlib.import_module("halo_nb.storage.store")
parts_module = importlib.import_module("halo_nb.storage.parts")
span_batch = importlib.import_module("halo_nb.ingest.span_batch")
DAY_NS = 86_400 * 10**9


def frame_of(spans: list[dict]) -> pl.DataFrame:
    return decode_protobuf(protobuf_body(spans)).frame


def agent_trace(start_ns: int | None = None, *, ended: bool = True, error: bool = False,
                tokens: tuple[int, int] = (10, 5)) -> list[dict]:
    trace_id = new_trace_id()
    start = start_ns or time.time_ns()
    root = span("agent", trace_id=trace_id, start_ns=start, duration_ns=50_000_000,
                attrs={"openinference.span.kind": "AGENT", "input.value": "q",
                       "output.value": "a", "llm.token_count.total": 999}, status=1)
    llm = span("llm", trace_id=trace_id, parent=root["span_id"], start_ns=start + 1000,
               attrs={"llm.model_name": "m", "llm.token_count.prompt": tokens[0],
                      "llm.token_count.completion": tokens[1]})
    tool = span("tool", trace_id=trace_id, parent=root["span_id"], start_ns=start + 2000,
                status=2 if error else 0, attrs={"openinference.span.kind": "TOOL"})
    return [root, llm, tool] if ended else [llm, tool]


@pytest.fixture
def disk_store(tmp_path: Path):
    stores: list[SpanStore] = []

    def open_store(retention_days: float | None = None) -> SpanStore:
        s = SpanStore(tmp_path / "data", retention_days=retention_days)
        stores.append(s)
        return s

    yield open_store
    for s in stores:
        s.close()


def test_append_dedupes_and_counts_new_spans(memory_store: SpanStore) -> None:
    spans = agent_trace()
    assert memory_store.append(frame_of(spans)) == 3
    assert memory_store.append(frame_of(spans)) == 0  # an exporter retry
    doubled = frame_of(spans + [span("extra", trace_id=spans[0]["trace_id"])] + spans)
    assert memory_store.append(doubled) == 1
    assert len(memory_store) == 4
    assert memory_store.spans().height == 4
    assert memory_store.spans()[["trace_id", "span_id"]].is_duplicated().sum() == 0


def test_spans_are_snapshots_with_the_schema(memory_store: SpanStore) -> None:
    assert memory_store.spans().schema == pl.Schema(SPAN_SCHEMA)
    spans = agent_trace()
    memory_store.append(frame_of(spans))
    snapshot = memory_store.spans()
    snapshot.drop_in_place("name")
    snapshot.insert_column(0, pl.Series("x", [1, 2, 3]))
    assert memory_store.spans().columns == list(SPAN_SCHEMA)
    one = memory_store.spans(spans[0]["trace_id"])
    assert one["name"].to_list() == ["agent", "llm", "tool"]
    memory_store.append(frame_of(agent_trace()))
    assert one.height == 3 and memory_store.spans().height == 6


def test_unknown_trace_raises_naming_the_id(memory_store: SpanStore) -> None:
    with pytest.raises(UnknownTraceError, match="feedbeef") as info:
        memory_store.spans("feedbeef")
    assert isinstance(info.value, KeyError)


def test_traces_summarises_each_trace(memory_store: SpanStore) -> None:
    now = time.time_ns()
    ok = agent_trace(now - 10_000_000)
    failed = agent_trace(now, error=True, tokens=(100, 50))
    open_ = agent_trace(now + 10_000_000, ended=False)
    for spans in (ok, failed, open_):
        memory_store.append(frame_of(spans))
    table = memory_store.traces()
    assert table["trace_id"].to_list() == [s[0]["trace_id"] for s in (open_, failed, ok)]
    rows = {r["trace_id"]: r for r in table.to_dicts()}
    first = rows[ok[0]["trace_id"]]
    assert (first["name"], first["span_count"], first["llm_count"], first["tool_count"]) == (
        "agent", 3, 1, 1)
    assert (first["status"], first["error_count"], first["ended"]) == ("ok", 0, True)
    assert first["tokens_total"] == 15  # the LLM span's, not the root's repeated sum
    assert (first["input"], first["output"], first["service"]) == ("q", "a", "test-agent")
    assert first["duration_ms"] == pytest.approx(50.0)
    second = rows[failed[0]["trace_id"]]
    assert (second["status"], second["error_count"], second["tokens_total"]) == ("error", 1, 150)
    third = rows[open_[0]["trace_id"]]
    assert third["ended"] is False and third["name"] == "llm"
    assert memory_store.trace_ids() == [s[0]["trace_id"] for s in (ok, failed, open_)]


def test_version_and_subscribers_follow_appends(memory_store: SpanStore) -> None:
    seen: list[int] = []
    unsubscribe = memory_store.subscribe(seen.append)
    start = memory_store.version
    spans = agent_trace()
    memory_store.append(frame_of(spans))
    memory_store.append(frame_of(spans))  # nothing new: no notification
    memory_store.append(frame_of(agent_trace()))
    assert seen == [start + 1, start + 2] and memory_store.version == start + 2
    unsubscribe()
    memory_store.append(frame_of(agent_trace()))
    assert seen == [start + 1, start + 2]


def test_concurrent_appends_lose_nothing(memory_store: SpanStore) -> None:
    frames = [frame_of([span(f"s{i}") for i in range(200)]) for _ in range(16)]

    def worker(chunk: list[pl.DataFrame]) -> None:
        for frame in chunk:
            memory_store.append(frame)
            memory_store.spans()

    threads = [threading.Thread(target=worker, args=(frames[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memory_store) == memory_store.spans().height == 3200


def test_spans_survive_a_restart_and_duplicates_stay_single(disk_store) -> None:
    first = disk_store()
    spans = agent_trace()
    first.append(frame_of(spans))
    first.append(frame_of(agent_trace()))
    before = first.spans()
    first.close()
    second = disk_store()
    assert second.spans().sort("span_id").equals(before.sort("span_id"))
    assert second.append(frame_of(spans)) == 0
    assert len(second) == 6
    assert second.traces().height == 2


def test_parts_reach_disk_within_a_second_without_close(disk_store, tmp_path: Path) -> None:
    live = disk_store()
    live.append(frame_of(agent_trace()))
    deadline = time.monotonic() + 2
    while not list((tmp_path / "data").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    parts = list((tmp_path / "data").glob("part-*.parquet"))
    assert parts, "no part written within 2 s"
    assert pl.read_parquet(parts[0]).height == 3
    assert not list((tmp_path / "data").glob("*.tmp"))


def test_many_appends_merge_into_few_parts(disk_store, tmp_path: Path) -> None:
    live = disk_store()
    for _ in range(100):
        live.append(frame_of([span() for _ in range(10)]))
        live.flush()
    parts = len(list((tmp_path / "data").glob("part-*.parquet")))
    assert parts <= 2 * store_module.COMPACT_PARTS, parts
    live.close()
    assert disk_store().spans().height == 1000


def parquet_codecs(folder: Path) -> dict[str, set[str]]:
    """Each part's file name and the compression codecs of its column chunks."""
    codecs = {}
    for part in folder.glob("part-*.parquet"):
        try:
            meta = pq.ParquetFile(part).metadata
        except FileNotFoundError:  # compaction removed it since the listing
            continue
        codecs[part.name] = {meta.row_group(g).column(c).compression
                             for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    return codecs


def test_hot_parts_are_uncompressed_and_compacted_once_ingest_pauses(
        disk_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "IDLE_COMPACT_S", 1.0)
    folder = tmp_path / "data"
    live = disk_store()
    for _ in range(3):
        live.append(frame_of([span() for _ in range(50)]))
        live.flush()
    hot = parquet_codecs(folder)
    assert len(hot) >= 2 and all(n.endswith(parts_module.HOT_SUFFIX) for n in hot), hot
    assert all(c == {"UNCOMPRESSED"} for c in hot.values()), hot
    expected = live.spans().sort("span_id")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(parquet_codecs(folder)) != 1:
        time.sleep(0.05)
    cold = parquet_codecs(folder)
    assert list(cold.values()) == [{"ZSTD"}], cold
    assert not next(iter(cold)).endswith(parts_module.HOT_SUFFIX)
    assert pl.read_parquet(folder / next(iter(cold))).height == 150
    live.close()
    assert disk_store().spans().sort("span_id").equals(expected)


def test_a_restart_before_compaction_loads_hot_parts_and_compacts_them(
        disk_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "IDLE_COMPACT_S", 3600.0)
    folder = tmp_path / "data"
    first = disk_store()
    first.append(frame_of(agent_trace()))
    first.flush()
    first.append(frame_of(agent_trace()))
    expected = first.spans().sort("span_id")
    first.close()
    assert len(parquet_codecs(folder)) == 2
    monkeypatch.setattr(store_module, "IDLE_COMPACT_S", 0.2)
    second = disk_store()
    assert second.spans().sort("span_id").equals(expected)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and list(parquet_codecs(folder).values()) != [{"ZSTD"}]:
        time.sleep(0.05)
    assert list(parquet_codecs(folder).values()) == [{"ZSTD"}]
    second.close()
    assert disk_store().spans().sort("span_id").equals(expected)


def test_unreadable_parts_and_leftover_temp_files_do_not_block_loading(
        disk_store, tmp_path: Path) -> None:
    first = disk_store()
    first.append(frame_of(agent_trace()))
    first.close()
    folder = tmp_path / "data"
    (folder / "part-0-damaged.parquet").write_bytes(b"not parquet")
    (folder / ".part-1.parquet.tmp").write_bytes(b"half written")
    second = disk_store()
    assert len(second) == 3
    assert not (folder / ".part-1.parquet.tmp").exists()


def backdate_parts(folder: Path, days: float) -> None:
    """Rename every part as if its spans had arrived ``days`` ago (the arrival time is
    part of a part's name)."""
    import re

    then = time.time_ns() - int(days * DAY_NS)
    for part in folder.glob("part-*.parquet"):
        part.rename(part.with_name(re.sub(r"-\d+a(-hot)?\.parquet$", rf"-{then}a\1.parquet",
                                          part.name)))


def test_retention_drops_traces_that_arrived_long_ago_in_memory_and_on_disk(
        disk_store, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    first = disk_store()
    old = agent_trace()
    first.append(frame_of(old))
    first.close()
    backdate_parts(folder, 10)
    second = disk_store()
    recent = agent_trace()
    second.append(frame_of(recent))
    second.close()
    third = disk_store(retention_days=5)  # retention runs on load
    assert third.trace_ids() == [recent[0]["trace_id"]]
    with pytest.raises(UnknownTraceError):
        third.spans(old[0]["trace_id"])
    third.close()
    assert sum(pl.read_parquet(p).height for p in folder.glob("part-*.parquet")) == 3
    assert disk_store(retention_days=5).trace_ids() == [recent[0]["trace_id"]]


def test_retention_keeps_what_just_arrived_whatever_its_start_time(disk_store) -> None:
    now = time.time_ns()
    unset = [span("unset", start_ns=0, duration_ns=0)]  # start time 0: unset
    ancient = agent_trace(now - 40 * DAY_NS)
    live = disk_store(retention_days=30)
    for spans in (unset, ancient):
        live.append(frame_of(spans))
    assert live.apply_retention() == 0
    live.close()
    reopened = disk_store(retention_days=30)
    assert len(reopened) == 4
    # A month and a day after they arrived, they are gone.
    assert reopened.apply_retention(now_ns=time.time_ns() + 31 * DAY_NS) == 4


def test_retention_keeps_imported_snapshots() -> None:
    store = SpanStore(None, retention_days=5)
    imported = frame_of(agent_trace()).with_columns(origin=pl.lit("retry-loop.json"))
    live = frame_of(agent_trace())
    store.append(imported)
    store.append(live)
    assert store.apply_retention(now_ns=time.time_ns() + 60 * DAY_NS) == 3
    assert store.trace_ids() == imported["trace_id"].unique().to_list()
    store.close()


def test_retention_runs_periodically(disk_store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "RETENTION_INTERVAL_S", 0.1)
    live = disk_store(retention_days=0.3 / 86_400)  # 0.3 s
    live.append(frame_of(agent_trace()))
    assert len(live) == 3
    deadline = time.monotonic() + 3
    while len(live) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live) == 0 and live.spans().height == 0


def test_a_frame_without_newer_columns_is_conformed(memory_store: SpanStore) -> None:
    frame = frame_of([span("a", span_id=new_span_id())]).drop("finish_reason", "origin")
    assert memory_store.append(frame) == 1
    assert memory_store.spans().columns == list(SPAN_SCHEMA)


def native_batch(spans: list[dict]) -> SpanBatch:
    result = decode_protobuf(protobuf_body(spans))
    batch = result.span_batch()
    assert not isinstance(batch.spans, pl.DataFrame), "expected the native decoder's table"
    return batch


def test_a_trace_spread_over_requests_keeps_its_new_spans_and_drops_retries(
        memory_store: SpanStore) -> None:
    first, second = agent_trace(), agent_trace()
    late = span("late", trace_id=first[0]["trace_id"], parent=first[0]["span_id"])
    assert memory_store.append_batches([native_batch(first[:2])]) == 2
    # One request: a retry of a stored span, the rest of its trace, and another trace.
    assert memory_store.append_batches([native_batch([first[1], first[2], late, *second])]) == 5
    assert memory_store.append_batches([native_batch(first + [late])]) == 0
    assert sorted(memory_store.spans(first[0]["trace_id"])["name"]) == [
        "agent", "late", "llm", "tool"]
    assert len(memory_store) == 7


def test_batches_of_tables_and_frames_keep_their_order_and_keys(
        memory_store: SpanStore) -> None:
    a, b, c = agent_trace(), agent_trace(), agent_trace()
    batches = [native_batch(a), SpanBatch.of_frame(frame_of(b)), native_batch(c)]
    assert memory_store.append_batches(batches) == 9
    assert memory_store.spans()["span_id"].to_list() == [x["span_id"] for x in a + b + c]
    retry = [native_batch(a[:1]), SpanBatch.of_frame(frame_of(b[1:2] + [span("new")])),
             native_batch(c[2:])]
    assert memory_store.append_batches(retry) == 1
    assert memory_store.spans()["name"].to_list()[-1] == "new"


def test_key_collisions_never_drop_distinct_spans(
        memory_store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(span_batch, "span_keys",
                        lambda frame: pl.Series([7] * frame.height, dtype=pl.UInt64))
    spans = agent_trace()
    assert memory_store.append(frame_of(spans[:2])) == 2
    assert memory_store.append(frame_of(spans)) == 1
    assert memory_store.append(frame_of(spans)) == 0
    assert sorted(memory_store.spans()["name"]) == ["agent", "llm", "tool"]


def test_trace_table_updates_incrementally_like_a_full_summary(memory_store: SpanStore) -> None:
    from halo_nb.storage.traces_summary import summarise_traces

    traces = [agent_trace(ended=False) for _ in range(12)]
    for spans in traces:
        memory_store.append(frame_of(spans))
    assert memory_store.traces().height == 12
    late_root = span("agent", trace_id=traces[3][0]["trace_id"], span_id=traces[3][0]["parent"])
    memory_store.append(frame_of([late_root] + agent_trace()))
    table = memory_store.traces()
    assert table.equals(summarise_traces(memory_store.spans()))
    row = table.filter(pl.col("trace_id") == traces[3][0]["trace_id"]).row(0, named=True)
    assert (row["name"], row["ended"], row["span_count"]) == ("agent", True, 3)


def test_key_index_finds_keys_in_the_recent_set_and_in_merged_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    monkeypatch.setattr(KeyIndex, "RECENT_LIMIT", 100)
    rng = random.Random(3)
    index = KeyIndex()
    stored = [rng.getrandbits(64) for _ in range(1_000)] + [0, 2**64 - 1]
    for start in range(0, len(stored), 37):
        index.add(stored[start:start + 37])
    assert len(index._runs) > 1 and index._recent  # both kinds of storage are in play
    absent = [rng.getrandbits(64) for _ in range(500)] + [1, 2**64 - 2]
    assert index.contains(stored) == [True] * len(stored)
    assert index.contains(absent) == [False] * len(absent)
    index.remove(pl.Series(stored[:500], dtype=pl.UInt64))
    assert index.contains(stored) == [False] * 500 + [True] * (len(stored) - 500)


def test_failed_background_writes_back_off_and_lose_nothing(
        disk_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = disk_store()
    attempts = []
    write = PartFolder.write

    def failing(self: PartFolder, frame: pl.DataFrame, *, hot: bool, arrived_ns: int) -> Path:
        attempts.append(time.monotonic())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PartFolder, "write", failing)
    spans = agent_trace()
    live.append(frame_of(spans))
    time.sleep(2.0)
    # Without backing off the flush thread would have tried 8 times (every 0.25 s).
    assert 1 <= len(attempts) <= 4, attempts
    assert len(live) == 3 and live.spans().height == 3  # still queryable from memory
    monkeypatch.setattr(PartFolder, "write", write)
    live.flush()
    assert sum(pl.read_parquet(p).height for p in (tmp_path / "data").glob("part-*.parquet")) == 3
