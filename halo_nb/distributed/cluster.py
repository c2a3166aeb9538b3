"""A Dask client: to the scheduler at an address, or to a local cluster of worker
processes started for one analysis (loopback only, one thread per worker: the walk is
Python and holds the GIL)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(address: str | None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for the block: connected to ``address``, or to a new local
    cluster of ``workers`` processes (default: one per CPU) that stops with the block."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("engine='dask' needs Dask distributed: "
                          "pip install 'halo_nb[distributed]'") from exc
    if address:
        with Client(address) as client:
            yield client
        return
    count = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def worker_count(client: Any) -> int:
    """Threads across the cluster's workers (how many tasks run at once)."""
    return max(1, sum(client.nthreads().values()))
