"""Durability in one process, on real files: damaged parts are quarantined and the rest
loads, rewrites read back before deleting, part size is bounded, the write-ahead log
survives a torn tail, sync appends share fsyncs, the memory ceiling answers 503,
retention never drops what just arrived, an empty storage path is refused."""

from __future__ import annotations

import http.client
import importlib
import logging
import os
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp_factory import protobuf_body, span

import halo_nb
from halo_nb import cli
from halo_nb.config import ConfigError
from halo_nb.ingest.otlp import decode_protobuf
from halo_nb.ingest.server import Collector
from halo_nb.storage import StoreFull
from halo_nb.storage.parts import PartFolder, PartVerifyError
from halo_nb.storage.store import SpanStore
from halo_nb.storage.wal import recover

store_module = importlib.import_module("halo_nb.storage.store")
parts_module = importlib.import_module("halo_nb.storage.parts")
DAY_NS = 86_400 * 10**9


def spans_frame(count: int, **kwargs) -> pl.DataFrame:
    return decode_protobuf(protobuf_body([span("s", **kwargs) for _ in range(count)])).frame


def part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet"))


def on_disk_span_ids(folder: Path) -> set[str]:
    """What a restart would load: the write-ahead log's spans and the parts'. Read while the
    store's flusher runs, so in this order: a span the log no longer holds was written to a
    part before its segment was deleted, so the parts listed afterwards hold it. A file
    deleted between listing and reading (a segment covered, a part compacted) starts over."""
    while True:
        try:
            ids = set()
            for table in recover(folder)[0]:
                ids.update(table.column("span_id").to_pylist())
            for part in part_files(folder):
                ids.update(pl.read_parquet(part, columns=["span_id"])["span_id"].to_list())
            return ids
        except FileNotFoundError:
            continue


def test_damaged_parts_are_quarantined_named_and_the_rest_loads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "data"
    store = SpanStore(folder)
    for _ in range(3):
        store.append(spans_frame(40))
        store.flush()
    store.close()
    parts = part_files(folder)
    assert len(parts) == 3
    truncated = parts[1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (folder / "part-00000000000000000001-1-abcdef01-7r-1a.parquet").write_bytes(b"garbage")
    spans_frame(2).select("name").write_parquet(folder / "part-9-foreign.parquet")
    with caplog.at_level(logging.WARNING):
        reopened = SpanStore(folder)
    assert len(reopened) == 80
    quarantine = folder / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == sorted(
        [truncated.name, "part-00000000000000000001-1-abcdef01-7r-1a.parquet",
         "part-9-foreign.parquet"])
    held = {q.name: q.spans for q in reopened.quarantined}
    assert held[truncated.name] == 40 and held["part-9-foreign.parquet"] is None
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert truncated.name in warning and "40 spans" in warning and "7 spans" in warning
    assert "span count unknown" in warning
    reopened.close()
    assert len(SpanStore(folder)) == 80  # quarantined files stay aside, not reloaded


def test_a_rewrite_that_does_not_read_back_keeps_its_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    store = SpanStore(folder)
    for _ in range(3):
        store.append(spans_frame(50))
        store.flush()
    hot = part_files(folder)
    write = PartFolder.write

    def losing_disk(self: PartFolder, frame: pl.DataFrame, *, hot: bool,
                    arrived_ns: int) -> Path:
        """A disk that silently drops the end of what it is given."""
        part = write(self, frame, hot=hot, arrived_ns=arrived_ns)
        if not hot:
            part.write_bytes(part.read_bytes()[:-64])
        return part

    monkeypatch.setattr(PartFolder, "write", losing_disk)
    with pytest.raises(PartVerifyError):
        store._compact_one()
    assert part_files(folder) == hot  # inputs kept, the bad output removed
    monkeypatch.setattr(PartFolder, "write", write)
    store.close()
    assert len(SpanStore(folder)) == 150


def test_idle_compaction_keeps_parts_bounded_so_one_bad_file_loses_a_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (parts_module, importlib.import_module("halo_nb.storage.chunks"),
                   importlib.import_module("halo_nb.storage.loading")):
        monkeypatch.setattr(module, "PART_MAX_ROWS", 100)
    monkeypatch.setattr(store_module, "MERGE_LIMIT_ROWS", 100)
    folder = tmp_path / "data"
    store = SpanStore(folder)
    store.append(spans_frame(450))  # one append larger than a part
    store.flush()
    store.close()
    reopened = SpanStore(folder)
    while any(p.name.endswith("-hot.parquet") for p in part_files(folder)):
        reopened._compact_one()
    sizes = [pl.read_parquet(p).height for p in part_files(folder)]
    assert sorted(sizes) == [50, 100, 100, 100, 100]
    reopened.close()
    part_files(folder)[2].write_bytes(b"lost to a disk error")
    assert len(SpanStore(folder)) == 450 - sizes[2]


def test_the_write_ahead_log_loads_up_to_a_torn_tail(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    store = SpanStore(folder, durability="sync")
    store.append(spans_frame(30))
    store.append(spans_frame(20))
    segments = sorted(folder.glob("wal-*.arrows"))
    assert segments and not part_files(folder)  # acknowledged: in the log, not in a part yet
    # A kill -9 in the middle of the next write leaves half a record behind.
    with segments[-1].open("ab") as fh:
        fh.write(b"HWAL\x00\x10\x00\x00\x00\x00\x00\x00partial")
    # What a restart sees, without this store closing (it still runs, as a killed one would
    # have been).
    assert len(on_disk_span_ids(folder)) == 50
    store._closed = True  # stop its flusher without writing: the state a kill leaves
    store._wake.set()
    store._flusher.join()
    reopened = SpanStore(folder)
    assert len(reopened) == 50
    reopened.close()
    assert not list(folder.glob("wal-*.arrows"))  # written as a part, the log is gone
    assert len(SpanStore(folder)) == 50


def test_sync_appends_are_on_disk_when_they_return_and_share_fsyncs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    store = SpanStore(folder, durability="sync")
    wal_module = importlib.import_module("halo_nb.storage.wal")
    fsyncs = []
    real_fsync = wal_module.os.fsync

    def counting_fsync(fd: int) -> None:
        # os is one module: count the log's fsyncs, not the flusher's of parts and folders.
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith("wal-"):
            fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(wal_module.os, "fsync", counting_fsync)
    returned: list[set[str]] = []
    missing: list[str] = []

    def worker() -> None:
        for _ in range(10):
            frame = spans_frame(5)
            store.append(frame)
            ids = set(frame["span_id"].to_list())
            absent = ids - on_disk_span_ids(folder)
            missing.extend(absent)
            returned.append(ids)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not missing
    assert len(returned) == 80 and len(store) == 400
    assert len(fsyncs) < 80, "concurrent appends did not share an fsync"
    store.close()


def test_the_memory_ceiling_refuses_appends_and_the_collector_answers_503() -> None:
    store = SpanStore(None, max_bytes=300_000)
    first = spans_frame(100)
    store.append(first)
    with pytest.raises(StoreFull, match="max_store_bytes"):
        for _ in range(50):
            store.append(spans_frame(100))
    held = len(store)
    collector = Collector(store, port=0).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
        conn.request("POST", "/v1/traces", body=protobuf_body([span() for _ in range(500)]),
                     headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        status = Status.FromString(response.read())
        assert response.status == 503
        assert int(response.getheader("Retry-After")) > 0
        assert "max_store_bytes" in status.message
        conn.close()
    finally:
        collector.stop()
    assert len(store) == held and store.spans().height == held  # nothing lost, nothing added
    assert store.spans().head(100)["span_id"].equals(first["span_id"])
    store.close()


def test_spans_of_any_age_sent_now_survive_retention(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    store = SpanStore(folder, retention_days=30)
    collector = Collector(store, port=0).start()
    now = time.time_ns()
    sent = [span("unset", start_ns=0, duration_ns=0),
            span("old", start_ns=now - 40 * DAY_NS),
            span("older", start_ns=now - 400 * DAY_NS)]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
        conn.request("POST", "/v1/traces", body=protobuf_body(sent),
                     headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        reply = ExportTraceServiceResponse.FromString(response.read())
        assert response.status == 200 and reply.partial_success.rejected_spans == 0
        conn.close()
    finally:
        collector.stop()
    assert store.apply_retention() == 0
    store.close()
    reopened = SpanStore(folder, retention_days=30)  # retention also runs at load
    assert sorted(reopened.spans()["name"].to_list()) == ["old", "older", "unset"]
    reopened.close()


def test_an_empty_storage_path_is_refused_everywhere(
        halo_runtime: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="empty"):
        SpanStore("")
    with pytest.raises(ConfigError, match="^storage_path: must not be empty"):
        halo_nb.configure(storage_path="")
    assert cli.main(["list-traces", "--storage", ""]) == cli.EXIT_USAGE
    assert "--storage: must not be empty" in capsys.readouterr().err
