"""Stateful worker processes: shards of work, each held by one process, called by function.

GMM training keeps each shard's utterances, features and compiled graphs in its worker for the whole
run, and only small things (a model, statistics, alignments) cross the pipe; decoding keeps a graph
per worker. :class:`ShardPool` is that pattern once::

    shards = balanced_shards(utts, weight=lambda u: u.num_frames, num_shards=num_jobs)
    with ShardPool([ShardWorker(s) for s in shards], start_method="fork") as pool:
        stats = pool.map(ShardWorker.accumulate)            # same call on every shard, shard order
        alis = pool.map_each(ShardWorker.align, [(o,) for o in opts_per_shard])  # one argument tuple per shard

``fn`` is any picklable callable taking the worker first (a module-level function or an unbound
method such as ``ShardWorker.align``), so calls are checked by name resolution, not by string.
With one shard (or ``num_jobs <= 1``) everything runs in-process, which is also what tests and
debuggers see. A worker's exception comes back as :class:`WorkerError` naming the shard, the
function and the child's traceback; the pool stays usable.

Start methods: ``"fork"`` shares the parent's memory (cheap for big shards) but hangs in torch's
OpenMP once the parent has run torch ops (measured); ``"spawn"``/``"forkserver"`` pickle each worker
to its process, which then runs single-threaded (``OMP_NUM_THREADS=1``, one torch thread).
"""
import logging
import multiprocessing as mp
import os
import traceback
from typing import Any, Callable, Generic, List, Optional, Sequence, Tuple, TypeVar

logger = logging.getLogger(__name__)

W = TypeVar("W")
T = TypeVar("T")

__all__ = ["ShardPool", "WorkerError", "balanced_shards", "single_thread"]


class WorkerError(RuntimeError):
    """A call failed in a worker process; ``shard`` is its index, the message holds its traceback."""

    def __init__(self, shard: int, fn_name: str, detail: str) -> None:
        super().__init__(f"worker {shard} failed in {fn_name}:\n{detail}")
        self.shard = shard
        self.fn_name = fn_name


def single_thread() -> None:
    """Make this process use one thread for OpenMP/BLAS/torch (worker processes share the cores)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # the pool itself needs no torch
        pass


def balanced_shards(items: Sequence[T], weight: Callable[[T], float], num_shards: int,
                    key: Optional[Callable[[T], Any]] = None) -> List[List[T]]:
    """Split ``items`` into ``num_shards`` lists of about equal total ``weight``, deterministically.

    Heaviest first onto the lightest shard (ties by ``key``, default the item's position), so the
    result depends only on the items. Never returns more shards than items (at least one).
    """
    num_shards = max(1, min(num_shards, len(items)))
    order = sorted(range(len(items)), key=lambda i: (-weight(items[i]), key(items[i]) if key else i))
    shards: List[List[T]] = [[] for _ in range(num_shards)]
    load = [0.0] * num_shards
    for i in order:
        k = min(range(num_shards), key=lambda j: (load[j], j))
        shards[k].append(items[i])
        load[k] += weight(items[i])
    return shards


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _serve(conn: Any, worker: Any, threads_one: bool) -> None:
    if threads_one:
        single_thread()
    while True:
        msg = conn.recv()
        if msg is None:
            break
        fn, args, kwargs = msg
        try:
            conn.send(("ok", fn(worker, *args, **kwargs)))
        except Exception as e:  # report to the parent, keep serving
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class ShardPool(Generic[W]):
    """One process per worker object (in-process when there is one worker or ``num_jobs <= 1``)."""

    def __init__(self, workers: Sequence[W], num_jobs: Optional[int] = None, start_method: str = "fork") -> None:
        if start_method not in ("fork", "spawn", "forkserver"):
            raise ValueError(f"start_method must be fork, spawn or forkserver, not {start_method!r}")
        self.workers: List[W] = list(workers)
        if not self.workers:
            raise ValueError("ShardPool needs at least one worker")
        jobs = len(self.workers) if num_jobs is None else num_jobs
        self._procs: List[Any] = []
        self._conns: List[Any] = []
        if jobs > 1 and len(self.workers) > 1:
            ctx = mp.get_context(start_method)
            for w in self.workers:
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_serve, args=(child, w, start_method != "fork"), daemon=True)
                p.start()
                child.close()
                self._procs.append(p)
                self._conns.append(parent)

    @property
    def in_process(self) -> bool:
        return not self._procs

    def __len__(self) -> int:
        return len(self.workers)

    def map(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> List[T]:
        """``fn(worker, *args, **kwargs)`` on every worker; results in worker order."""
        return self.map_each(fn, [args] * len(self.workers), kwargs)

    def map_each(self, fn: Callable[..., T], args_per_worker: Sequence[Tuple[Any, ...]],
                 kwargs: Optional[dict] = None) -> List[T]:
        """``fn(worker_i, *args_per_worker[i])`` on each worker; results in worker order."""
        if len(args_per_worker) != len(self.workers):
            raise ValueError(f"{len(args_per_worker)} argument tuples for {len(self.workers)} workers")
        kwargs = kwargs or {}
        if self.in_process:
            return [fn(w, *a, **kwargs) for w, a in zip(self.workers, args_per_worker)]
        for c, a in zip(self._conns, args_per_worker):
            c.send((fn, tuple(a), kwargs))
        out: List[Any] = []
        first_error: Optional[WorkerError] = None
        for i, c in enumerate(self._conns):  # drain every reply so the pipes stay in step
            status, value = c.recv()
            if status == "error" and first_error is None:
                first_error = WorkerError(i, _fn_name(fn), value)
            out.append(value)
        if first_error is not None:
            raise first_error
        return out

    def close(self) -> None:
        for c in self._conns:
            try:
                c.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                logger.warning("worker pid %d did not exit; terminating it", p.pid)
                p.terminate()
        self._procs, self._conns = [], []

    def __enter__(self) -> "ShardPool[W]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
