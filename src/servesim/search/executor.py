"""Executors: run independent goodput searches in this process, a local process pool, or Ray.

All three return outcomes in the order of the tasks given, whatever order they finish in, so
the search's decisions (and its output) do not depend on the number of workers. Ray is an
optional extra, imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from servesim.errors import InputError
from servesim.search.evaluate import Task, TaskOutcome, run_task

OnDone = Callable[[], None]


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    """workers: local processes (1 = in this process; None = all cores). ray_address: use Ray
    ('auto'/'' for a local Ray started on demand, or a cluster address). cache_dir: None = off."""

    workers: int | None = None
    ray_address: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError("workers", self.workers, "an integer >= 1")

    @property
    def num_workers(self) -> int:
        return self.workers if self.workers is not None else (os.cpu_count() or 1)


class Executor:
    """Runs batches of tasks; keeps a process pool (or Ray) alive across batches."""

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def run(self, tasks: Sequence[Task], on_done: OnDone | None = None) -> list[TaskOutcome]:
        """Outcomes in the order of `tasks`; `on_done()` after each one finishes."""
        done = on_done or (lambda: None)
        if self.spec.ray_address is not None:
            return self._run_ray(tasks, done)
        if self.spec.num_workers == 1 or len(tasks) <= 1:
            return [_run_and_report(t, self.spec.cache_dir, done) for t in tasks]
        return self._run_pool(tasks, done)

    def _run_pool(self, tasks: Sequence[Task], done: OnDone) -> list[TaskOutcome]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.spec.num_workers)
        futures = {
            self._pool.submit(run_task, t, self.spec.cache_dir): i for i, t in enumerate(tasks)
        }
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            done()
        return [o for o in outcomes if o is not None]

    def _run_ray(self, tasks: Sequence[Task], done: OnDone) -> list[TaskOutcome]:
        ray, remote = self._ray_remote()
        refs = [remote.remote(t, self.spec.cache_dir) for t in tasks]
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for _ in ready:
                done()
        return list(ray.get(refs))

    def _ray_remote(self) -> tuple[Any, Any]:
        if self._ray is None:
            ray = import_ray()
            if not ray.is_initialized():
                address = self.spec.ray_address or None
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            self._ray = (ray, ray.remote(run_task))
        return self._ray


def _run_and_report(task: Task, cache_dir: str | None, done: OnDone) -> TaskOutcome:
    outcome = run_task(task, cache_dir)
    done()
    return outcome


def import_ray() -> Any:
    """The `ray` module, or an InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "ray",
            "not installed",
            "install the optional extra: pip install 'servesim[ray]' (or run without --ray)",
        ) from None
    return ray
