"""Link AOTInductor wrapper libraries so they load next to libtorch on every host.

The problem (evidence in docs/aoti-cuda-load-crash.md; fix developed in tools/aoti_gpu/fix.py,
which the packager must not import, so its idea is vendored here): on the GPU machine a package
compiles, but loading it (CPU and CUDA packages alike) crashes inside the generated wrapper
``.so``, in ``std::regex`` code reached from ``torch::aot_inductor::parse_device_str``.  There
``$CXX`` (``/opt/gcc/bin/g++``) links libstdc++ *statically*, and a static archive linked into a
shared object is exported by default: the wrapper carries and exports its own libstdc++.  At
load time the dynamic linker binds part of it (the locale facet ids, ``STB_GNU_UNIQUE`` data) to
the ``libstdc++.so.6`` libtorch already loaded, so the wrapper's locale code indexes its facets
with another library's ids and ``use_facet`` returns the wrong object -> SIGSEGV.
``-Wl,-Bsymbolic`` alone does not help.

The fix, at build time only: link every shared object Inductor makes with
``-Wl,--exclude-libs,ALL -Wl,-Bsymbolic`` (symbols from static archives are not exported; the
library binds its references to its own definitions), and the wrapper ``*.wrapper.so`` with a
version script exporting only the ``AOTInductor*`` C entry points that libtorch's loader looks
up.  A static libstdc++ then stays private to the wrapper, which talks to libtorch only through
the AOTI C ABI; a compiler that links libstdc++ dynamically works as before.  Inductor has no
setting for link flags but lets us choose the compiler (``cpp.cxx``), so we point it at a small
generated shell shim that runs the real compiler and appends the flags when linking.  Its name
contains ``g++`` / ``clang++`` because Inductor picks compiler flags by name.
:func:`package_link_problems` checks the result, so a torch that renames the wrapper (the
version script keys on ``*.wrapper.so``, true for torch 2.11 and 2.13) fails the build instead
of shipping a crash.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import sys
import tempfile
import zipfile

from packager.errors import BackendError

__all__ = ["LINK_FLAGS", "WRAPPER_EXPORTS", "link_fix_configs", "package_link_problems"]

# Appended to every link of a shared object (a command with -shared).
LINK_FLAGS = ("-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic")
# The only symbols a wrapper library exports (version-script glob): libtorch's loader dlsyms them.
WRAPPER_EXPORTS = "AOTInductor*"
# Inductor's name for the wrapper library; only that link gets the version script, since other
# libraries it builds (ISA probes, autotuning kernels loaded with ctypes) keep their exports.
WRAPPER_SUFFIX = ".wrapper.so"

_SHIM = """#!/bin/sh
# poros-pack AOTInductor compiler shim (packager/backends/_aoti_link.py).
# Runs {real}; linking a shared object appends {link_flags};
# linking *{suffix} also appends {wrapper_flags}
REAL={real_quoted}
out=; previous=
for argument in "$@"; do [ "$previous" = "-o" ] && out=$argument; previous=$argument; done
case " $* " in
  *" -shared "*)
    set -- "$@"{link_args}
    case "$out" in *{suffix}) set -- "$@"{wrapper_args} ;; esac ;;
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


def _write_once(name_prefix: str, suffix: str, text: str, mode: int) -> str:
    """Write ``text`` to a file named by its hash (so the path, and with it Inductor's cache
    key, is stable across builds), atomically; return the path."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(_shim_directory(), f"{name_prefix}{digest}{suffix}")
    try:
        with open(path) as existing:
            if existing.read() == text and os.stat(path).st_mode & 0o777 == mode:
                return path
    except OSError:
        pass
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    return path


def _compiler_shim(real_compiler: str) -> str:
    real = shutil.which(real_compiler)
    if real is None:
        raise BackendError(
            f"the C++ compiler {real_compiler!r} that AOTInductor needs is not on PATH; install g++ "
            "(or set $CXX) on the build machine"
        )
    real = os.path.abspath(real)
    version_script = _write_once("poros-", ".map", "{ global: %s; local: *; };\n" % WRAPPER_EXPORTS, 0o644)
    wrapper_flags = (f"-Wl,--version-script={version_script}",)
    text = _SHIM.format(
        real=real,
        real_quoted=_quote(real),
        suffix=WRAPPER_SUFFIX,
        link_flags=" ".join(LINK_FLAGS),
        wrapper_flags=" ".join(wrapper_flags),
        link_args="".join(" " + _quote(flag) for flag in LINK_FLAGS),
        wrapper_args="".join(" " + _quote(flag) for flag in wrapper_flags),
    )
    family = "clang++" if "clang" in os.path.basename(real) else "g++"
    return _write_once("poros-", f"-{family}", text, 0o755)


def link_fix_configs(configured_compiler: object) -> dict[str, str]:
    """``inductor_configs`` entries that route Inductor's compiler through the shim.

    ``configured_compiler`` is Inductor's current ``cpp.cxx``: a string is kept as the real
    compiler; its default (a tuple of candidates) means ``$CXX``, else ``g++``, as Inductor
    itself would choose.  Linux only: elsewhere, ``{}``.
    """
    if sys.platform != "linux":
        return {}
    real = configured_compiler if isinstance(configured_compiler, str) else (os.environ.get("CXX") or "g++")
    return {"cpp.cxx": _compiler_shim(real)}


# ELF constants: PT_DYNAMIC, SHT_DYNSYM, dynamic tags DT_NULL / DT_SYMBOLIC / DT_FLAGS, DF_SYMBOLIC.
_PT_DYNAMIC, _SHT_DYNSYM = 2, 11
_DT_NULL, _DT_SYMBOLIC, _DT_FLAGS, _DF_SYMBOLIC = 0, 16, 30, 0x2


def _elf_exports(data: bytes) -> tuple[bool, list[str]] | None:
    """(linked -Bsymbolic, names of the defined dynamic symbols) of a 64-bit little-endian ELF
    shared object; None if ``data`` is not one."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    program_headers, section_headers = struct.unpack_from("<QQ", data, 0x20)
    program_entry, program_count, section_entry, section_count = struct.unpack_from("<HHHH", data, 0x36)
    symbolic = False
    for index in range(program_count):
        kind, _flags, offset, _vaddr, _paddr, size = struct.unpack_from(
            "<IIQQQQ", data, program_headers + index * program_entry
        )
        if kind != _PT_DYNAMIC:
            continue
        for entry in range(size // 16):
            tag, value = struct.unpack_from("<qQ", data, offset + 16 * entry)
            if tag == _DT_NULL:
                break
            symbolic = symbolic or tag == _DT_SYMBOLIC or (tag == _DT_FLAGS and bool(value & _DF_SYMBOLIC))
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, section_headers + index * section_entry)
        for index in range(section_count)
    ]
    exported: list[str] = []
    for section in sections:
        kind, offset, size, link, entry_size = section[1], section[4], section[5], section[6], section[9]
        if kind != _SHT_DYNSYM or not entry_size:
            continue
        strings = sections[link][4]
        for index in range(1, size // entry_size):
            name_offset, _info, _other, section_index = struct.unpack_from("<IBBH", data, offset + index * entry_size)
            if section_index == 0:  # undefined: imported from another library
                continue
            end = data.index(b"\0", strings + name_offset)
            exported.append(data[strings + name_offset:end].decode(errors="replace"))
    return symbolic, exported


def package_link_problems(payload: bytes) -> list[str]:
    """Why the libraries in the .pt2 package ``payload`` may crash when loaded next to libtorch
    (empty when every one binds to itself and exports only the ``AOTInductor*`` entry points)."""
    prefix = WRAPPER_EXPORTS.rstrip("*")
    problems: list[str] = []
    with zipfile.ZipFile(io.BytesIO(payload)) as package:
        libraries = [name for name in package.namelist() if name.endswith(".so")]
        for name in libraries:
            info = _elf_exports(package.read(name))
            if info is None:
                problems.append(f"{name} is not a 64-bit ELF shared object")
                continue
            symbolic, exported = info
            if not symbolic:
                problems.append(f"{name} is not linked -Bsymbolic")
            foreign = [symbol for symbol in exported if not symbol.startswith(prefix)]
            if foreign:
                problems.append(
                    f"{name} exports {len(foreign)} symbols besides {WRAPPER_EXPORTS} (e.g. "
                    f"{', '.join(foreign[:3])}); a statically linked libstdc++ must stay private"
                )
            elif not exported:
                problems.append(f"{name} exports no {WRAPPER_EXPORTS} entry point")
    if not libraries:
        problems.append("the package holds no shared library")
    return problems
