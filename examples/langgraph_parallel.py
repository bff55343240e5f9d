"""A LangGraph graph whose parallel nodes share their results through sharedctx.

Three analyst nodes run in parallel, and each puts its result in the store, in the
namespace ``("runs", <run>, "analyses")``. The last node, ``report``, waits on the
store's context until all three are there, then writes the report.

    python examples/langgraph_parallel.py                                # in memory
    python examples/langgraph_parallel.py --backend redis://localhost:6379/0

In memory the analysts write as they run. On Redis each analyst node starts its work
in a process of its own, which opens its own ``SharedContextStore`` on the same session
and writes there, and the node returns at once: so ``report`` starts before the results
exist, and ``store.context.wait_for`` is what waits for them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from sharedctx.integrations.langgraph import SharedContextStore

TEXT = (
    "Sharpen the knife before the class, not during it. A dull blade slips; a sharp one "
    "goes where you send it. Teach the grip first, then the rocking cut, then the speed."
)


def count_words(text: str) -> int:
    return len(text.split())


def longest_word(text: str) -> str:
    return max((word.strip(".,;") for word in text.split()), key=len)


def vowel_share(text: str) -> float:
    letters = [char for char in text.lower() if char.isalpha()]
    return round(sum(char in "aeiou" for char in letters) / len(letters), 3)


ANALYSES: dict[str, Callable[[str], Any]] = {
    "words": count_words,
    "longest": longest_word,
    "vowels": vowel_share,
}


class State(TypedDict, total=False):
    run: str
    text: str
    report: str


@dataclass
class RunContext:
    """What every node of a run knows besides the state (LangGraph's run context)."""

    session: str
    backend: str  # "memory" or a Redis URL
    in_processes: bool  # run each analysis in a process of its own


def results_of(run: str) -> tuple[str, ...]:
    return ("runs", run, "analyses")


def analyse(session: str, backend: str, run: str, name: str, text: str) -> None:
    """Run one analysis in a separate process: its own store, on the same session."""
    with SharedContextStore(session, backend=backend) as store:
        store.put(results_of(run), name, {"result": ANALYSES[name](text)})


WORKERS: list[multiprocessing.process.BaseProcess] = []


def analyst(name: str) -> Callable[..., State]:
    def node(state: State, runtime: Runtime[RunContext]) -> State:
        run, text = state["run"], state["text"]
        if runtime.context.in_processes:
            spawn = multiprocessing.get_context("spawn")
            args = (runtime.context.session, runtime.context.backend, run, name, text)
            worker = spawn.Process(target=analyse, args=args)
            worker.start()  # and return at once: report waits for the result
            WORKERS.append(worker)
        else:
            assert runtime.store is not None
            runtime.store.put(results_of(run), name, {"result": ANALYSES[name](text)})
        return {}

    return node


def report(state: State, runtime: Runtime[RunContext]) -> State:
    store = runtime.store
    assert isinstance(store, SharedContextStore)
    pattern = store.pattern_for(results_of(state["run"]))
    entries = store.context.wait_for(pattern, count=len(ANALYSES), timeout=60)
    items = [store.to_item(entry) for entry in entries]
    return {"report": "\n".join(f"{item.key}: {item.value['result']}" for item in items)}


def build() -> StateGraph[State, RunContext, State, State]:
    graph = StateGraph(State, context_schema=RunContext)
    for name in ANALYSES:
        graph.add_node(name, analyst(name))
        graph.add_edge(START, name)
    graph.add_node("report", report)
    graph.add_edge(list(ANALYSES), "report")
    graph.add_edge("report", END)
    return graph


def run(backend: str = "memory", text: str = TEXT) -> str:
    """Run the graph once on ``backend``; return the report."""
    session = f"langgraph-example-{uuid.uuid4().hex[:8]}"
    context = RunContext(session, backend, in_processes=backend != "memory")
    with SharedContextStore(session, backend=backend) as store:
        try:
            graph = build().compile(store=store)
            state = graph.invoke({"run": "run-1", "text": text}, context=context)
        finally:
            for worker in WORKERS:
                worker.join()
            store.context.destroy()
    written: str = state["report"]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="memory", help="memory (default) or a Redis URL")
    backend = parser.parse_args().backend
    where = "in memory" if backend == "memory" else "on Redis, analyses in separate processes"
    print(f"report ({where}):")
    print(run(backend))


if __name__ == "__main__":
    main()
