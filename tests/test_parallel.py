"""asr_bl.parallel: stateful shard workers in real processes, called by function."""
import os

import pytest

from asr_bl.parallel import ShardPool, WorkerError, balanced_shards


class Counter:
    def __init__(self, items):
        self.items = list(items)
        self.calls = 0

    def total(self, scale=1):
        self.calls += 1
        return sum(self.items) * scale

    def pid_and_calls(self):
        return os.getpid(), self.calls

    def fail_on_odd(self):
        if sum(self.items) % 2:
            raise ValueError(f"odd shard {self.items}")
        return "ok"


def add(worker, value):
    worker.items.append(value)
    return len(worker.items)


def test_balanced_shards_are_deterministic_and_balanced():
    items = list(range(1, 11))
    shards = balanced_shards(items, weight=float, num_shards=3)
    assert sorted(x for s in shards for x in s) == items
    loads = [sum(s) for s in shards]
    assert max(loads) - min(loads) <= 1
    assert shards == balanced_shards(items, weight=float, num_shards=3)
    assert len(balanced_shards([5], weight=float, num_shards=4)) == 1


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_state_lives_in_the_worker_processes(start_method):
    with ShardPool([Counter([1, 2]), Counter([3])], start_method=start_method) as pool:
        assert not pool.in_process
        assert pool.map(Counter.total) == [3, 3]
        assert pool.map(Counter.total, scale=2) == [6, 6]
        assert pool.map_each(add, [(10,), (20,)]) == [3, 2]
        assert pool.map(Counter.total) == [13, 23]
        pids_calls = pool.map(Counter.pid_and_calls)
        assert {pid for pid, _ in pids_calls}.isdisjoint({os.getpid()})
        assert [calls for _, calls in pids_calls] == [3, 3]
    # the parent's copies never saw the calls: the state is the workers'
    assert pool.workers[0].calls == 0


def test_worker_error_names_the_shard_and_the_pool_stays_usable():
    with ShardPool([Counter([2]), Counter([1])]) as pool:
        with pytest.raises(WorkerError, match=r"worker 1 failed in Counter.fail_on_odd:\nValueError: odd shard \[1\]"):
            pool.map(Counter.fail_on_odd)
        assert pool.map(Counter.total) == [2, 1]


def test_one_job_runs_in_process():
    workers = [Counter([1]), Counter([2])]
    with ShardPool(workers, num_jobs=1) as pool:
        assert pool.in_process
        assert pool.map(Counter.total) == [1, 2]
    assert workers[0].calls == 1
