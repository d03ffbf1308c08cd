"""Link AOTInductor wrapper libraries with ``-Wl,-Bsymbolic`` so they load on CUDA hosts.

The problem (torch 2.11+cu130 on the H100/H200 machine; investigation in tools/aoti_gpu/): a
package compiles, but loading it crashes inside the generated wrapper ``.so``, in ``std::regex``
code reached from ``torch::aot_inductor::parse_device_str``.  The wrapper is built by the host
``g++`` and carries its own weak, default-visibility instantiations of the ``std::regex``
templates; without ``-Bsymbolic`` its calls to them go through the PLT and the dynamic linker
binds them to the first definition in the global scope.  ``import torch`` loads the CUDA
libraries ``RTLD_GLOBAL``, and one of them exports instantiations of the same templates built
with another object layout, so the wrapper runs foreign code on its own objects -> SIGSEGV.
CPU-only torch has no such library in the global scope, which is why CPU packages load.

The fix (the same as tools/aoti_gpu/fix.py, which the packager must not import): link the
wrapper ``-Bsymbolic`` so it binds to its own definitions.  Inductor has no setting for link
flags but lets us choose the C++ compiler (``cpp.cxx``), so we point it at a small generated
shell shim that runs the real compiler and appends the flag when linking a shared object.  The
shim's name contains ``g++`` / ``clang++`` because Inductor picks compiler flags by name.  It
changes only how the artifact is linked: the package needs nothing special at load time.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import sys
import tempfile
import zipfile

from packager.errors import BackendError

__all__ = ["LINK_FLAGS", "link_fix_configs", "package_links_symbolic"]

LINK_FLAGS = ("-Wl,-Bsymbolic",)

_SHIM = """#!/bin/sh
# poros-pack AOTInductor compiler shim (packager/backends/_aoti_link.py).
# Runs {real} and, when linking a shared object, appends: {flags}
REAL={real_quoted}
case " $* " in
  *" -shared "*) set -- "$@"{flag_args} ;;
esac
exec "$REAL" "$@"
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _shim_directory() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "poros-pack", "aoti-cxx-shim")
    try:
        os.makedirs(directory, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    directory = os.path.join(tempfile.gettempdir(), f"poros-aoti-cxx-shim-{os.getuid()}")
    os.makedirs(directory, exist_ok=True)
    return directory


def _compiler_shim(real_compiler: str) -> str:
    """Write the shim once (its name is a hash of its content, so the Inductor cache key is
    stable across builds) and return its path."""
    real = shutil.which(real_compiler)
    if real is None:
        raise BackendError(
            f"the C++ compiler {real_compiler!r} that AOTInductor needs is not on PATH; install g++ "
            "(or set $CXX) on the build machine"
        )
    text = _SHIM.format(
        real=real,
        real_quoted=_quote(real),
        flags=" ".join(LINK_FLAGS),
        flag_args="".join(" " + _quote(flag) for flag in LINK_FLAGS),
    )
    family = "clang++" if "clang" in os.path.basename(real) else "g++"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(_shim_directory(), f"poros-{digest}-{family}")
    try:
        with open(path) as existing:
            if existing.read() == text:
                return path
    except OSError:
        pass
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(temporary, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.replace(temporary, path)
    return path


def link_fix_configs(configured_compiler: object) -> dict[str, str]:
    """``inductor_configs`` entries that route Inductor's compiler through the shim.

    ``configured_compiler`` is Inductor's current ``cpp.cxx`` (a path, or its default tuple of
    candidates); a string is kept as the real compiler.  Linux only: elsewhere, ``{}``.
    """
    if sys.platform != "linux":
        return {}
    real = configured_compiler if isinstance(configured_compiler, str) else (os.environ.get("CXX") or "g++")
    return {"cpp.cxx": _compiler_shim(real)}


# ELF dynamic-section tags: DT_NULL, DT_SYMBOLIC, DT_FLAGS (with DF_SYMBOLIC).
_DT_NULL, _DT_SYMBOLIC, _DT_FLAGS, _DF_SYMBOLIC, _PT_DYNAMIC = 0, 16, 30, 0x2, 2


def _elf_links_symbolic(data: bytes) -> bool | None:
    """Whether a 64-bit little-endian ELF shared object was linked -Bsymbolic (None: not one)."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (program_header_offset,) = struct.unpack_from("<Q", data, 0x20)
    entry_size, entry_count = struct.unpack_from("<HH", data, 0x36)
    for index in range(entry_count):
        offset = program_header_offset + index * entry_size
        kind, _flags, segment_offset, _vaddr, _paddr, segment_size = struct.unpack_from("<IIQQQQ", data, offset)
        if kind != _PT_DYNAMIC:
            continue
        for entry in range(segment_size // 16):
            tag, value = struct.unpack_from("<qQ", data, segment_offset + 16 * entry)
            if tag == _DT_NULL:
                break
            if tag == _DT_SYMBOLIC or (tag == _DT_FLAGS and value & _DF_SYMBOLIC):
                return True
        return False
    return None


def package_links_symbolic(payload: bytes) -> bool:
    """True if every shared object in the .pt2 package ``payload`` was linked -Bsymbolic."""
    with zipfile.ZipFile(io.BytesIO(payload)) as package:
        libraries = [name for name in package.namelist() if name.endswith(".so")]
        return bool(libraries) and all(_elf_links_symbolic(package.read(name)) for name in libraries)
