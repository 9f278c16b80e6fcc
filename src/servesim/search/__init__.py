"""Placement search: the goodput-optimal colocated and disaggregated configurations.

`search(problem, options, executor_spec)` runs DistServe's placement algorithms over the engine
(colocated policies, high and low node affinity), with goodput found by bisection over the rate,
pruning by queueing bounds, a local process pool or Ray, and an on-disk cache of rate points.
"""

from servesim.search.bounds import ShapeBounds
from servesim.search.cache import DEFAULT_CACHE_DIR, PointCache
from servesim.search.evaluate import Evaluator, SimEvaluator, Task, TaskOutcome, run_task
from servesim.search.executor import Executor, ExecutorSpec
from servesim.search.goodput import BisectionSpec, GoodputResult, RatePoint, find_goodput
from servesim.search.planner import Planner, SearchOptions
from servesim.search.problem import SearchProblem, WorkloadSpec
from servesim.search.results import Candidate, SearchResult, bottleneck
from servesim.search.run import search
from servesim.search.shapes import GroupShape, Shape

__all__ = [
    "DEFAULT_CACHE_DIR",
    "BisectionSpec",
    "Candidate",
    "Evaluator",
    "Executor",
    "ExecutorSpec",
    "GoodputResult",
    "GroupShape",
    "Planner",
    "PointCache",
    "RatePoint",
    "SearchOptions",
    "SearchProblem",
    "SearchResult",
    "Shape",
    "ShapeBounds",
    "SimEvaluator",
    "Task",
    "TaskOutcome",
    "WorkloadSpec",
    "bottleneck",
    "find_goodput",
    "run_task",
    "search",
]
