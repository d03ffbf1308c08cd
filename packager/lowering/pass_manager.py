"""Running lowering passes: repeat a pipeline until nothing changes, check the IR after each pass.

A pass rewrites a graph in place and returns whether it changed anything. :class:`PassManager`
runs its passes in order, again and again, until one whole round changes nothing (or
``max_iterations`` rounds ran). After every pass it runs :func:`packager.ir.verify` so a pass that
breaks the IR is named at once instead of crashing a later stage.

Invariant: when :meth:`PassManager.run` returns, the graph verifies and every pass ran on it at
least once. When it raises, the error is a :class:`LoweringError` that names the pass that
failed and the passes that ran before it; the original exception is its ``__cause__``.

The :class:`LoweringReport` says what each pass run changed, as counts of nodes removed and
added per op (computed here, by counting, so no pass can misreport), and lists the reasons that
passes left on nodes they did not rewrite (``node.meta["not_fused_reason"]`` and friends), for
``poros-pack inspect``.
"""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from packager.errors import InternalError, LoweringError
from packager.ir.graph import Graph
from packager.ir.verify import verify

__all__ = ["Pass", "PassManager", "PassRun", "NodeNote", "LoweringReport", "REASON_KEYS"]

# The ``node.meta`` keys under which passes say why they left a node alone.
REASON_KEYS = (
    "not_fused_reason", "not_folded_reason", "not_removed_reason", "not_functionalized_reason",
    "not_scalarized_reason",
)


class Pass(abc.ABC):
    """A graph rewrite. Subclasses set ``name`` and implement :meth:`run`.

    ``run`` edits the graph in place and returns True when it changed anything (notes left in
    ``node.meta`` do not count). It must leave a graph that verifies, and must eventually
    return False when run again and again on its own result, or the pass manager never settles.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__ and not cls.name:
            raise InternalError(f"lowering pass {cls.__qualname__} must set a class attribute 'name'")

    @abc.abstractmethod
    def run(self, graph: Graph) -> bool:
        """Rewrite ``graph`` in place; return whether anything changed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, slots=True)
class PassRun:
    """One run of one pass: what it changed, as node counts per op."""

    name: str
    iteration: int
    changed: bool
    removed: dict[str, int]
    added: dict[str, int]


@dataclass(frozen=True, slots=True)
class NodeNote:
    """A reason a pass left on a node it did not rewrite."""

    node: str
    op: str
    key: str
    reason: str


@dataclass(slots=True)
class LoweringReport:
    """What lowering did to a graph. Deterministic: the same graph gives the same report."""

    runs: list[PassRun] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False
    nodes_before: int = 0
    nodes_after: int = 0
    notes: list[NodeNote] = field(default_factory=list)

    @property
    def not_fused(self) -> list[NodeNote]:
        return [note for note in self.notes if note.key == "not_fused_reason"]

    def changes_by_pass(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{pass name: {"removed": {op: count}, "added": {op: count}}}`` over all iterations."""
        totals: dict[str, dict[str, Counter[str]]] = {}
        for run in self.runs:
            entry = totals.setdefault(run.name, {"removed": Counter(), "added": Counter()})
            entry["removed"].update(run.removed)
            entry["added"].update(run.added)
        return {
            name: {kind: dict(sorted(counts.items())) for kind, counts in entry.items()}
            for name, entry in totals.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "converged": self.converged,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "passes": self.changes_by_pass(),
            "notes": [
                {"node": note.node, "op": note.op, "key": note.key, "reason": note.reason}
                for note in self.notes
            ],
        }

    def summary(self) -> str:
        lines = [
            f"lowering: {self.nodes_before} -> {self.nodes_after} nodes in {self.iterations} "
            f"iteration(s){'' if self.converged else ' (stopped before reaching a fixed point)'}"
        ]
        for name, changes in self.changes_by_pass().items():
            parts = [f"-{count} {op}" for op, count in changes["removed"].items()]
            parts += [f"+{count} {op}" for op, count in changes["added"].items()]
            lines.append(f"  {name}: {', '.join(parts) if parts else 'no change'}")
        for note in self.notes:
            lines.append(f"  {note.node} ({note.op}) {note.key.removesuffix('_reason').replace('_', ' ')}: "
                         f"{note.reason}")
        return "\n".join(lines)


class PassManager:
    """Runs ``passes`` in order, repeating the round until nothing changes."""

    def __init__(self, passes: Sequence[Pass], *, max_iterations: int = 10, verify_each: bool = True) -> None:
        if max_iterations < 1:
            raise InternalError(f"max_iterations must be at least 1, got {max_iterations}")
        for candidate in passes:
            if not getattr(candidate, "name", None) or not callable(getattr(candidate, "run", None)):
                raise InternalError(f"{candidate!r} is not a lowering pass (needs a 'name' and a 'run(graph)')")
        self.passes = list(passes)
        self.max_iterations = max_iterations
        self.verify_each = verify_each

    def run(self, graph: Graph) -> LoweringReport:
        report = LoweringReport(nodes_before=graph.node_count())
        if self.verify_each:
            try:
                verify(graph)
            except Exception as error:
                raise LoweringError(
                    f"graph '{graph.name}' is malformed before lowering, so no pass ran: {error}. "
                    "The front end produced it; report this with the model."
                ) from error
        history: list[tuple[int, str]] = []
        counts = _count_ops(graph)
        for iteration in range(1, self.max_iterations + 1):
            report.iterations = iteration
            changed_in_round = False
            for lowering_pass in self.passes:
                changed = self._run_one(lowering_pass, graph, iteration, history)
                history.append((iteration, lowering_pass.name))
                new_counts = _count_ops(graph)
                removed = counts - new_counts
                added = new_counts - counts
                report.runs.append(PassRun(lowering_pass.name, iteration, changed,
                                           dict(sorted(removed.items())), dict(sorted(added.items()))))
                counts = new_counts
                changed_in_round = changed_in_round or changed
            if not changed_in_round:
                report.converged = True
                break
        report.nodes_after = graph.node_count()
        report.notes = _collect_notes(graph)
        return report

    def _run_one(self, lowering_pass: Pass, graph: Graph, iteration: int, history: list[tuple[int, str]]) -> bool:
        name = lowering_pass.name
        try:
            changed = lowering_pass.run(graph)
        except Exception as error:
            raise LoweringError(
                f"lowering pass '{name}' failed on graph '{graph.name}' (iteration {iteration}; "
                f"{_describe_history(history)}): {type(error).__name__}: {error}. "
                f"Report this with the model; to build anyway, lower without '{name}'."
            ) from error
        if not isinstance(changed, bool):
            raise LoweringError(
                f"lowering pass '{name}' returned {changed!r} instead of True/False (iteration {iteration}; "
                f"{_describe_history(history)}); it must say whether it changed the graph"
            )
        if self.verify_each:
            try:
                verify(graph)
            except Exception as error:
                raise LoweringError(
                    f"lowering pass '{name}' left a malformed graph '{graph.name}' (iteration {iteration}; "
                    f"{_describe_history(history)}): {error}. "
                    f"Report this with the model; to build anyway, lower without '{name}'."
                ) from error
        return changed


def _describe_history(history: list[tuple[int, str]]) -> str:
    if not history:
        return "no pass ran before it"
    rounds: dict[int, list[str]] = {}
    for iteration, name in history:
        rounds.setdefault(iteration, []).append(name)
    described = "; ".join(f"iteration {iteration}: {', '.join(names)}" for iteration, names in rounds.items())
    return f"passes that ran before it: {described}"


def _count_ops(graph: Graph) -> Counter[str]:
    return Counter(node.op for node in graph.walk())


def _collect_notes(graph: Graph) -> list[NodeNote]:
    notes = []
    for node in graph.walk():
        for key in REASON_KEYS:
            reason = node.meta.get(key)
            if reason is not None:
                where = f"%{node.outputs[0].name}" if node.outputs else repr(node)
                notes.append(NodeNote(where, node.kind, key, str(reason)))
    return notes
