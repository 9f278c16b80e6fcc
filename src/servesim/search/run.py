"""`search`: one call that builds the executor, runs the planner and returns the result."""

from __future__ import annotations

from servesim.search.evaluate import Evaluator, SimEvaluator
from servesim.search.executor import Executor, ExecutorSpec
from servesim.search.planner import Planner, Progress, SearchOptions
from servesim.search.problem import SearchProblem
from servesim.search.results import SearchResult


def search(
    problem: SearchProblem,
    options: SearchOptions | None = None,
    executor: ExecutorSpec | None = None,
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Run the placement search; `progress(n)` counts goodput searches as they finish."""
    with Executor(executor or ExecutorSpec()) as ex:
        evaluator = evaluator or SimEvaluator()
        return Planner(problem, evaluator, options or SearchOptions(), ex, progress).run()
