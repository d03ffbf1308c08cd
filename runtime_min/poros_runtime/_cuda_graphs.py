"""CUDA graph replay of a loaded module's glue: ``load(path, cuda_graphs=True)``.

AOTInductor engines launch every kernel from the host on every call, so small models are
bound by launch overhead.  :class:`GraphRunner` records a whole glue call (fallback ops and
engines together) once per distinct input shapes into a ``torch.cuda.CUDAGraph`` and replays
it afterwards: one launch per call.

Per call with shapes already captured: copy the inputs into the graph's static input buffers,
replay, and return the outputs (copies by default; the graph's own buffers with
``graph_outputs="reuse"``).  The key is the input shapes alone: dtypes and device are fixed by
the signature check, and strides do not matter because the static buffers are contiguous.

New shapes: warm up (a few plain calls on the capture stream: TorchScript's profiling runs,
AOTInductor's first-run set-up, cuBLAS workspaces), then capture on that stream into a memory
pool shared by the module's graphs, then evict the least recently used graph beyond
``max_graphs``.  Replays of one module never overlap on the GPU (see ``_replay``), which is
what makes sharing the pool safe.

A capture fails when the glue waits for the GPU (a data-dependent ``if``, ``.item()``) or does
anything else a graph cannot record.  The capture is then ended, the allocator told, one
WARNING logged on the ``"poros_runtime"`` logger and the reason recorded in the status; the
module captures no more graphs (graphs already captured keep replaying) and the call runs
without a graph, as do all calls with shapes that have no graph.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UsageError

__all__ = ["DEFAULT_MAX_GRAPHS", "GRAPH_OUTPUTS", "GraphRunner", "check_options", "check_device"]

_LOGGER = logging.getLogger("poros_runtime")

GRAPH_OUTPUTS = ("copy", "reuse")
DEFAULT_MAX_GRAPHS = 16
# Plain calls on the capture stream before each capture (PyTorch's examples use 3): lazy set-up
# (TorchScript's profiling executor optimizes on its second call, AOTInductor loads kernels on
# its first) must not happen inside the capture.
WARMUP_CALLS = 3
# torch documents one capture at a time per process; the lock keeps this runtime's captures
# (of any module, from any thread) apart.
_CAPTURE_LOCK = threading.Lock()

_ERROR_CLASS = re.compile(r"[\w.]*(?:Error|Exception)\b")
_ERROR_LINE = re.compile(r"(?:[\w.]*(?:Error|Exception):|CUDA error\b)")

Shapes = tuple[torch.Size, ...]



def _reset_rng_capture_state() -> None:
    """Take the CUDA random generators out of capture mode after an invalidated capture.

    ``capture_begin`` puts the default generator in capture mode and only a successful
    ``capture_end`` takes it out; after an invalidated capture every later random op on the
    device (``torch.randn(..., device="cuda")``, dropout) raises "Offset increment outside
    graph capture encountered unexpectedly".  torch has no public call to reset it, so capture
    an empty graph on the current (side) stream: its ``capture_end`` runs the generators'
    epilogue.  Seen on an H100 with torch 2.11.
    """
    try:
        graph = torch.cuda.CUDAGraph()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "The CUDA Graph is empty": that is the point
            graph.capture_begin(capture_error_mode="thread_local")
            graph.capture_end()
        graph.reset()
    except Exception:  # noqa: BLE001 - best effort; the failed capture is reported already
        pass


class CaptureFailed(Exception):
    """The glue call could not be recorded; ``str()`` is the reason, for the log and status."""


def check_options(cuda_graphs: Any, graph_outputs: Any, max_graphs: Any) -> None:
    """Raise :class:`UsageError` for option values ``load`` cannot take (checked even when
    ``cuda_graphs`` is False, so a typo never waits for the day graphs are switched on)."""
    if not isinstance(cuda_graphs, bool):
        hint = (" (for the graph's own output buffers pass graph_outputs='reuse')"
                if isinstance(cuda_graphs, str) else "")
        raise UsageError(f"cuda_graphs must be True or False, got {cuda_graphs!r}{hint}")
    if graph_outputs not in GRAPH_OUTPUTS:
        raise UsageError(
            f"graph_outputs must be 'copy' (default: each call returns new tensors) or 'reuse' "
            f"(the graph's own output buffers, overwritten by the next call), got {graph_outputs!r}"
        )
    if not isinstance(max_graphs, int) or isinstance(max_graphs, bool) or max_graphs < 1:
        raise UsageError(
            f"max_graphs must be an int >= 1 (graphs kept per module, one per distinct input "
            f"shapes), got {max_graphs!r}; to turn CUDA graphs off pass cuda_graphs=False"
        )


def check_device(device: torch.device, where: str) -> None:
    """``cuda_graphs=True`` needs the module to run on CUDA."""
    if device.type != "cuda":
        raise UsageError(
            f"{where}: cuda_graphs=True needs a CUDA device, but this artifact runs on "
            f"{str(device)!r}: CUDA graphs record CUDA kernel launches and have nothing to "
            f"record on {device.type}; load it without cuda_graphs, or rebuild it with "
            "--device cuda and load it on a GPU host"
        )


@dataclass(eq=False)
class _Graph:
    """One captured glue call: the graph, its static input buffers and its output structure."""

    graph: Any  # torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    outputs: Any
    streams: set[int] = field(default_factory=set)  # streams it has been replayed on

    def tensors(self) -> list[torch.Tensor]:
        return _flatten((self.inputs, self.outputs))


class GraphRunner:
    """Runs a glue module through CUDA graphs, one per distinct input shapes (at most
    ``max_graphs``, least recently used evicted).  Thread-safe: one lock per module serializes
    lookups, captures, input copies and replays."""

    def __init__(
        self,
        glue: Callable[..., Any],
        device: torch.device,
        *,
        graph_outputs: str,
        max_graphs: int,
        label: str,
    ) -> None:
        self._glue = glue
        self._device = device
        self._copy_outputs = graph_outputs == "copy"
        self._graph_outputs = graph_outputs
        self._max_graphs = max_graphs
        self._label = label
        self._lock = threading.Lock()
        self._graphs: OrderedDict[Shapes, _Graph] = OrderedDict()  # least recently used first
        # Created at the first capture (nothing touches CUDA before the first call).
        self._stream: Any = None  # torch.cuda.Stream: warm-ups and captures
        self._pool: Any = None  # the memory pool this module's graphs share
        self._last_stream: Any = None  # the stream of the latest replay
        self._disabled: dict[str, Any] | None = None
        self._counts = {"captures": 0, "replays": 0, "evictions": 0, "eager_calls": 0}

    def __call__(self, inputs: Sequence[torch.Tensor]) -> Any:
        key = tuple(tensor.shape for tensor in inputs)
        with self._lock:
            entry = self._graphs.get(key)
            if entry is not None:
                self._graphs.move_to_end(key)
            elif self._disabled is None:
                entry = self._capture_new(key, inputs)
            if entry is not None:
                outputs = self._replay(entry, inputs)
                self._counts["replays"] += 1
                return outputs
            self._counts["eager_calls"] += 1
        return self._glue(*inputs)

    def status(self) -> dict[str, Any]:
        """What ``PorosModule.cuda_graphs`` returns: see :func:`poros_runtime.load`."""
        with self._lock:
            return {
                "graph_outputs": self._graph_outputs,
                "max_graphs": self._max_graphs,
                "captured": [_shape_lists(key) for key in self._graphs],
                **self._counts,
                "disabled": None if self._disabled is None else dict(self._disabled),
            }

    # Called with the lock held.

    def _capture_new(self, key: Shapes, inputs: Sequence[torch.Tensor]) -> _Graph | None:
        try:
            entry = self._capture(inputs)
        except CaptureFailed as failure:
            self._disabled = {"shapes": _shape_lists(key), "reason": str(failure)}
            kept = (f"; the {len(self._graphs)} graph(s) captured before keep replaying"
                    if self._graphs else "")
            _LOGGER.warning(
                "%s: CUDA graph capture failed for input shapes %s: %s. This module captures "
                "no more graphs: calls without a captured graph run the glue as without "
                "cuda_graphs (same results)%s. See module.cuda_graphs.",
                self._label, _shape_lists(key), failure, kept,
            )
            return None
        self._graphs[key] = entry
        self._counts["captures"] += 1
        # Evict after capturing, not before: torch cannot share a pool whose graphs are all
        # gone (its use count must stay above zero), and with max_graphs=1 evicting first
        # would do just that.
        if len(self._graphs) > self._max_graphs:
            self._graphs.popitem(last=False)
            self._counts["evictions"] += 1
            if self._counts["evictions"] == 1:
                _LOGGER.warning(
                    "%s: called with more than %d distinct input shapes: CUDA graphs are "
                    "evicted least recently used first and captured again when their shapes "
                    "come back (each capture costs a few calls' time); pass a larger max_graphs "
                    "to poros_runtime.load, or call the model with fewer distinct shapes",
                    self._label, self._max_graphs,
                )
        return entry

    def _capture(self, inputs: Sequence[torch.Tensor]) -> _Graph:
        """Warm up and capture one glue call on static copies of ``inputs``.

        Raises :class:`CaptureFailed` when the call cannot be recorded; errors of the warm-up
        calls (the model itself failing on these inputs) propagate as they would without graphs.
        """
        with torch.cuda.device(self._device):
            caller = torch.cuda.current_stream()
            if self._stream is None:
                self._stream = torch.cuda.Stream()
                self._pool = torch.cuda.graph_pool_handle()
            side = self._stream
            side.wait_stream(caller)  # the inputs are written on the caller's stream
            last = self._last_stream
            if last is not None and last.cuda_stream != caller.cuda_stream:
                side.wait_stream(last)  # and after the previous replay, if on another stream
            try:
                with torch.cuda.stream(side):
                    # Allocated on the capture stream; _replay records the other streams that
                    # use them, so the allocator never hands them out while a replay runs.
                    static_inputs = [
                        torch.empty_like(tensor, memory_format=torch.contiguous_format)
                        for tensor in inputs
                    ]
                    for static, tensor in zip(static_inputs, inputs):
                        static.copy_(tensor)
                    for _ in range(WARMUP_CALLS):
                        self._glue(*static_inputs)
                    graph = torch.cuda.CUDAGraph()
                    with _CAPTURE_LOCK:
                        outputs = self._record(graph, static_inputs)
            finally:
                caller.wait_stream(side)
        return _Graph(graph, static_inputs, outputs)

    def _record(self, graph: Any, static_inputs: list[torch.Tensor]) -> Any:
        # capture_error_mode="thread_local": only this thread is barred from unsafe CUDA calls
        # while capturing; other threads (other models, other requests) keep running.
        began = False
        try:
            graph.capture_begin(pool=self._pool, capture_error_mode="thread_local")
            began = True
            outputs = self._glue(*static_inputs)
        except BaseException as error:
            self._abandon(graph, began)
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt and the like, after ending the capture
            raise CaptureFailed(_reason(error)) from error
        try:
            graph.capture_end()
        except Exception as error:
            self._abandon(graph, began=False)
            raise CaptureFailed(_reason(error)) from error
        return outputs

    def _abandon(self, graph: Any, began: bool) -> None:
        """Leave no trace of a failed capture: the stream out of capture mode, the allocator
        no longer routing allocations to the pool, the pool's reference dropped."""
        if began:
            try:
                # Ends capture mode even when the capture was invalidated (then it raises).
                graph.capture_end()
            except Exception:  # noqa: BLE001 - the capture failed already; this is cleanup
                pass
        # A failed capture_end raises before it tells the caching allocator that the capture
        # is over; without this the allocator would keep treating the pool as recording.
        # torch has no public call for it.  When capture_end did succeed, ending again raises
        # ("not currently recording") and the graph object releases the pool itself.
        try:
            self._release_pool()
        finally:
            if began:
                _reset_rng_capture_state()

    def _release_pool(self) -> None:
        end = getattr(torch._C, "_cuda_endAllocateToPool", None)
        release = getattr(torch._C, "_cuda_releasePool", None)
        if end is None or release is None:
            return
        index = self._device.index
        if index is None:
            index = torch.cuda.current_device()
        try:
            end(index, self._pool)
        except Exception:  # noqa: BLE001 - already ended, or never began
            return
        try:
            release(index, self._pool)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def _replay(self, entry: _Graph, inputs: Sequence[torch.Tensor]) -> Any:
        stream = torch.cuda.current_stream(self._device)
        handle = stream.cuda_stream
        # Everything below runs on the caller's stream.  The lock orders it on the host; when
        # this call's stream differs from the previous replay's (threads with their own
        # streams), wait for that one, so the input copies never overtake a replay still
        # reading the buffers and replays sharing the memory pool never overlap.
        if self._last_stream is None or self._last_stream.cuda_stream != handle:
            if self._last_stream is not None:
                stream.wait_stream(self._last_stream)
            self._last_stream = stream
        if handle not in entry.streams:
            for tensor in entry.tensors():
                tensor.record_stream(stream)
            entry.streams.add(handle)
        for static, tensor in zip(entry.inputs, inputs):
            static.copy_(tensor)
        entry.graph.replay()
        if self._copy_outputs:
            return _copy(entry.outputs, {})
        return entry.outputs


def _copy(value: Any, copies: dict[int, torch.Tensor]) -> Any:
    """``value`` with every tensor cloned (one clone per distinct tensor), same structure."""
    if isinstance(value, torch.Tensor):
        copy = copies.get(id(value))
        if copy is None:
            copy = copies[id(value)] = value.clone()
        return copy
    if isinstance(value, tuple):
        return tuple(_copy(item, copies) for item in value)
    if isinstance(value, list):
        return [_copy(item, copies) for item in value]
    return value


def _flatten(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_cuda else []
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _flatten(item)]
    return []


def _shape_lists(key: Shapes) -> list[list[int]]:
    return [list(shape) for shape in key]


def _reason(error: BaseException) -> str:
    """One line: the innermost error line of ``error`` (TorchScript wraps it in a traceback),
    plus what it usually means."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    text = errors[-1] if errors else lines[0] if lines else ""
    if not _ERROR_CLASS.match(text):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    if "not permitted when stream is capturing" in text or "StreamCaptureUnsupported" in text:
        text += (" (the glue waits for the GPU during the call, e.g. for a data-dependent "
                 "`if`, .item() or .tolist() on a CUDA tensor, which a CUDA graph cannot record)")
    return text
