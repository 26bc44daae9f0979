"""Reports rendered in processes of their own, returned in order.

Rendering an Evidently report is Evidently building plotly figures: about a second of one CPU
each, while the Spark session that read the days sits idle. A backfill's reports are spread
over the CPUs this process may use. The processes fork from a server that imported Evidently
once (``forkserver``: never a fork of this process and its JVM's threads), and it stays up for
the next asset of the same process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Processes at most: each holds a day's rows and its reference in memory.
MAX_WORKERS = 4
PRELOAD = ["lakeloop.monitoring.drift", "lakeloop.monitoring.quality", "evidently"]


def workers_for(jobs: int) -> int:
    """One process per CPU this process may use (at most MAX_WORKERS), never more than
    there are jobs; 1 means in this process."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(jobs, cpus, MAX_WORKERS))


def in_order(fn: Callable[[T], R], jobs: Sequence[T], workers: int | None = None
             ) -> Iterator[R]:
    """``fn(job)`` for each job, in the jobs' order. ``fn`` and the jobs must pickle (a
    module-level function, plain data); an exception in a job is raised here."""
    workers = workers_for(len(jobs)) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # At most two jobs per process in flight: a year's backfill is not all in memory.
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
