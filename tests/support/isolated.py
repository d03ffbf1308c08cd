"""Run test code in a fresh interpreter that cannot import the packager or any compiler.

The deployment promise is that ``poros_runtime`` runs with torch alone: no ``packager``, no
onnx / onnxruntime, no Triton, no TensorRT, no ``torch._inductor``.  Tests of the runtime side
run their code through :func:`run_isolated`, whose child installs a ``sys.meta_path`` finder
that refuses those imports (``ModuleNotFoundError``, as if they were not installed, also for
``importlib.util.find_spec`` probes), then checks at exit that none of them was imported.

The child reports to the parent by printing JSON on its last stdout line (:func:`emit` in the
child's namespace does that); :func:`run_isolated_json` parses it.

    from tests.support.isolated import run_isolated_json

    result = run_isolated_json('''
        import poros_runtime
        model = poros_runtime.load(path)
        emit({"ok": True})
    ''')
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["BLOCKED_MODULES", "run_isolated", "run_isolated_json", "IsolatedRunError"]

BLOCKED_MODULES: tuple[str, ...] = (
    "packager",
    "onnx",
    "onnxruntime",
    "triton",
    "torch._inductor",
    "tensorrt",
)

_REPOSITORY = Path(__file__).resolve().parents[2]

_PRELUDE = '''
import importlib.abc as _poros_abc
import importlib.util as _poros_util
import json as _poros_json
import sys as _poros_sys

_POROS_BLOCKED = {blocked!r}


def _poros_is_blocked(name):
    return any(name == root or name.startswith(root + ".") for root in _POROS_BLOCKED)


class _PorosBlockingFinder(_poros_abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _poros_is_blocked(name):
            raise ModuleNotFoundError(
                f"import of {{name!r}} blocked in runtime-only test", name=name
            )
        return None


_poros_sys.meta_path.insert(0, _PorosBlockingFinder())

# Code that probes for an optional package with importlib.util.find_spec gets None when the
# package is absent (torch does this for triton when CUDA initializes): answer the same for a
# blocked package instead of raising from inside the probe.
_poros_real_find_spec = _poros_util.find_spec


def _poros_find_spec(name, package=None):
    resolved = _poros_util.resolve_name(name, package) if name.startswith(".") else name
    if _poros_is_blocked(resolved):
        return None
    return _poros_real_find_spec(name, package)


_poros_util.find_spec = _poros_find_spec


def emit(value):
    """Report ``value`` to the parent test (JSON, on the last stdout line)."""
    print(_poros_json.dumps(value), flush=True)
'''

_EPILOGUE = '''
_poros_leaked = sorted(name for name in _poros_sys.modules if _poros_is_blocked(name))
assert not _poros_leaked, f"blocked modules were imported anyway: {_poros_leaked}"
'''


class IsolatedRunError(AssertionError):
    """The isolated child failed, or printed no JSON result; the message carries its output."""


def run_isolated(
    code: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with ``sys.executable -c`` behind the import blocker.

    The child's ``sys.path`` gets the repository root, so ``tests.support`` is importable;
    the installed packages come from the same environment as the parent.  Returns the
    completed process (text mode, stdout and stderr captured); does not raise on failure.
    """
    program = (
        _PRELUDE.format(blocked=BLOCKED_MODULES)
        + "\n"
        + textwrap.dedent(code)
        + "\n"
        + _EPILOGUE
    )
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_REPOSITORY), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_isolated_json(
    code: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> Any:
    """Run ``code`` like :func:`run_isolated`, require success, and return the JSON value the
    child printed on its last stdout line (with ``emit(value)``)."""
    completed = run_isolated(code, cwd=cwd, timeout=timeout)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise IsolatedRunError(_describe(completed, "the isolated child failed"))
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise IsolatedRunError(
            _describe(completed, "the isolated child's last stdout line is not JSON")
        ) from None


def _describe(completed: subprocess.CompletedProcess[str], what: str) -> str:
    return (
        f"{what} (exit code {completed.returncode})\n"
        f"--- stdout ---\n{completed.stdout[-4000:]}\n"
        f"--- stderr ---\n{completed.stderr[-4000:]}"
    )
