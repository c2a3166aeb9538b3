"""The distributed analysis at scale: up to 1M generated traces of ~20 spans, written once
as zstd Parquet parts across several storage folders, analysed on a local Dask cluster of
1 and 2 worker processes, with the single-process analysis beside it where it fits.

    python benchmarks/distributed_analysis.py [--sizes 100000 1000000] [--workers 1 2]
                                     [--distinct 100000] [--single-max 100000]

The corpus comes from the labelled generator (evaluation/corpus.py, ~20 spans a trace)
in chunks of 10,000 traces. Generating runs at ~1,000 traces a second on one core, so
only ``--distinct`` traces are generated (chunks with seeds 0, 1, …); the chunks past
them repeat those runs under new trace ids (each trace id gets its chunk number as
prefix): every trace is still analysed in full, but clusters recur in proportion. The
parts are written one chunk at a time (bounded memory) and reused by later runs.

Each analysis runs in a fresh child process; the table shows wall time (cluster start
apart) and the corpus statistics' share of it, the peak RSS of each worker process and
of the driver, whether the result (findings, clusters, hypotheses, assignments, blame)
is identical to the other runs of the same size, and the 1-minute load average after
the run (the machine may be shared). Model narratives are off (model = "none"): they
cost the same at any size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

CHUNK = 10_000
FOLDERS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--distinct", type=int, default=100_000,
                        help="traces generated; the rest repeat them under new ids")
    parser.add_argument("--single-max", type=int, default=100_000,
                        help="largest size also analysed in one process")
    parser.add_argument("--data", type=Path, default=Path("/tmp/halo-distributed-corpus"))
    parser.add_argument("--run", help=argparse.SUPPRESS)  # child: single | dask
    parser.add_argument("--parts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(size < CHUNK or size % CHUNK for size in args.sizes) or args.distinct < CHUNK:
        parser.error(f"--sizes and --distinct are written in chunks of {CHUNK:,} traces: "
                     f"give multiples of {CHUNK:,}")
    if args.run:
        _child(args)
        return
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    manifest = _corpus(args.data, max(args.sizes), args.distinct)
    print(f"{'traces':>9} {'spans':>11} {'engine':>10} {'start s':>7} {'wall s':>8} "
          f"{'stats s':>7} {'worker peak RSS MB':>20} {'driver MB':>9} {'clusters':>8} "
          f"{'same':>5} {'load':>5}", flush=True)
    for size in args.sizes:
        chunks = manifest["chunks"][: size // CHUNK]
        parts = args.data / f"parts-{size}.json"
        parts.write_text(json.dumps([p for chunk in chunks for p in chunk["parts"]]))
        spans = sum(chunk["spans"] for chunk in chunks)
        runs = [("dask", w) for w in args.workers]
        if size <= args.single_max:
            runs.insert(0, ("single", 1))
        digests = set()
        for engine, workers in runs:
            out = _run_child(engine, workers, parts, args.data)
            digests.add(out["digest"])
            label = "1 process" if engine == "single" else f"{workers} worker{'s' * (workers > 1)}"
            peaks = " ".join(f"{mb:,.0f}" for mb in out["worker_peak_mb"]) or "-"
            stats = out["timings"].get("statistics_s")
            print(f"{size:>9,} {spans:>11,} {label:>10} {out['start_s']:>7.1f} "
                  f"{out['wall_s']:>8.1f} {'-' if stats is None else f'{stats:.1f}':>7} "
                  f"{peaks:>20} {out['driver_peak_mb']:>9,.0f} {out['clusters']:>8} "
                  f"{'yes' if len(digests) == 1 else 'NO':>5} {os.getloadavg()[0]:>5.2f}",
                  flush=True)
        if size > args.single_max:
            print(f"{'':>9} one process: not run (the single-process analysis holds the "
                  f"whole corpus: ~{spans * 3_000 / 1e9:,.0f} GB at ~3 KB a span)", flush=True)


def _corpus(root: Path, traces: int, distinct: int) -> dict:
    """Write (once) ``traces`` traces as Parquet parts over FOLDERS storage folders."""
    from evaluation.corpus import generate
    from halo_nb.storage.parts import PartFolder

    manifest_path = root / "manifest.json"
    wanted = {"traces": traces, "distinct": distinct, "chunk": CHUNK}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            return manifest
    started = time.perf_counter()
    count, bases = traces // CHUNK, max(1, distinct // CHUNK)
    chunks: list[dict | None] = [None] * count
    for base in range(bases):
        spans = generate(CHUNK, seed=base, pad_to=20).spans
        for k in range(base, count, bases):
            rekeyed = spans.with_columns(
                pl.concat_str(pl.lit(f"{k:06x}"), pl.col("trace_id").str.slice(6))
                .alias("trace_id"))
            folder = PartFolder(root / f"collector-{k % FOLDERS}")
            parts = [str(p) for p in folder.write_verified(rekeyed, time.time_ns())]
            chunks[k] = {"parts": parts, "spans": rekeyed.height}
        print(f"corpus: base chunk {base + 1}/{bases} written "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    manifest = {**wanted, "chunks": chunks}
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def _run_child(engine: str, workers: int, parts: Path, data: Path) -> dict:
    command = [sys.executable, __file__, "--run", engine, "--workers", str(workers),
               "--parts", str(parts), "--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} with {workers} worker(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(args: argparse.Namespace) -> None:
    from halo_nb.config import Settings

    parts = json.loads(args.parts.read_text())
    settings = Settings(model="none")
    worker_peaks: list[float] = []
    if args.run == "single":
        from halo_nb.rlm import analyze_frame
        from halo_nb.rlm.prepare import NEEDED
        from halo_nb.sources import read_sources

        start_s, tick = 0.0, time.perf_counter()
        result = analyze_frame(read_sources(parts, NEEDED), settings)
        wall = time.perf_counter() - tick
    else:
        from dask.distributed import Client, LocalCluster

        from halo_nb.distributed import analyze_sources

        tick = time.perf_counter()
        with LocalCluster(n_workers=args.workers[0], threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            start_s, tick = time.perf_counter() - tick, time.perf_counter()
            result = analyze_sources(parts, settings, address=cluster.scheduler_address,
                                     scratch=args.data / "scratch")
            wall = time.perf_counter() - tick
            worker_peaks = sorted(client.run(_peak_mb).values())
    driver_peak = _peak_mb()
    print(json.dumps({"start_s": start_s, "wall_s": wall, "worker_peak_mb": worker_peaks,
                      "driver_peak_mb": driver_peak, "clusters": result.clusters.height,
                      "digest": _digest(result), "timings": result.timings}))


def _digest(result) -> str:
    """SHA-256 over every row of the result's frames, in order, and its note."""
    digest = hashlib.sha256(f"{result.trace_count} {result.note}".encode())
    for name in ("findings", "clusters", "hypotheses", "assignments", "blame"):
        digest.update(getattr(result, name).hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # evaluation/
    main()
