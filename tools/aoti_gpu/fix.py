"""Build-time fix for AOTInductor packages that crash when loaded (proven on the GPU machine).

Symptom (torch 2.11.0+cu130, H100/H200 machine): ``aoti_compile_and_package``
succeeds, but loading the .pt2 (``torch._inductor.aoti_load_package`` or
``torch._C._aoti.AOTIModelPackageLoader``) dies with SIGSEGV inside the wrapper
.so: ``parse_device_str`` -> ``std::regex`` compiler ->
``regex_traits<char>::transform_primary`` -> ``use_facet<collate<char>>`` ->
a virtual call that lands in ``std::codecvt<char16_t,...>::do_unshift``.

Root cause (docs/aoti-cuda-load-crash.md has the evidence): Inductor builds the
wrapper with ``$CXX`` (default ``g++``).  On the GPU machine ``CXX=/opt/gcc/bin/g++``,
a wrapper script that links libstdc++ *statically*, and a shared object links
exported symbols of a static archive as its own exports.  So the wrapper .so
carries a private copy of libstdc++ (locale, facets, iostreams: ~4,900 exported
symbols, no NEEDED libstdc++.so.6) and exports all of it.  At load time the
process already has the system libstdc++.so.6 (libtorch needs it).  The
dynamic linker binds the wrapper's references to the facet ids
(``std::collate<char>::id``, ``std::numpunct<char>::id``, ... 82 symbols,
STB_GNU_UNIQUE) to libstdc++.so.6, while the locale code that indexes the facet
table is the wrapper's private copy.  Ids from one copy index the facet array of
the other: ``use_facet<collate<char>>`` returns another facet, and the virtual
call goes to the wrong function -> SIGSEGV (with a plain g++ plus
``-static-libstdc++`` on the CPU machine it throws std::bad_cast instead).
It is not CUDA-specific: a CPU package built on the GPU machine crashes too.

Fix (applied at build time, nothing needed at load time): link every shared
object Inductor makes with ``-Wl,--exclude-libs,ALL -Wl,-Bsymbolic`` (symbols
from static archives are not exported; own symbols bind to themselves) and the
wrapper ``*.wrapper.so`` additionally with a version script that exports only the
``AOTInductor*`` C entry points libtorch's loader dlsym()s.  A static libstdc++
then stays a private implementation detail of the wrapper (which only talks to
libtorch through the AOTI C ABI), and a dynamic one is used as usual.  Either
way the artifact loads on any host with a matching torch.

Inductor has no config entry for link flags, but it lets us choose the C++
compiler (``cpp.cxx``).  :func:`inductor_compile_options` points ``cpp.cxx`` at a
tiny generated shell shim that ``exec``s the compiler Inductor would have used
(``$CXX`` or ``g++``) and appends those flags when linking.  The shim's file name
contains ``g++`` (or ``clang++``) because Inductor picks compiler flags by name.

What ``packager/backends/inductor.py`` must do (vendor this file; it needs only
the standard library)::

    opts = inductor_compile_options(device)            # {"cpp.cxx": "<shim>"}
    torch._inductor.aoti_compile_and_package(
        ep, package_path=path, inductor_configs={**opts, **other_configs})
    if not package_is_fixed(path):                     # pure Python ELF check
        raise BackendError("AOTInductor wrapper was not linked as expected")

What the runtime may do (for artifacts built without the fix):
``package_load_risk(path)`` (pure Python, no binutils) returns a reason string
when a wrapper .so exports its own libstdc++ (the crash signature); refuse such
an engine with that message instead of letting the process segfault.
LD_PRELOAD of the system libstdc++ also avoids the crash for such packages, but
needs the user to set an environment variable; RTLD_DEEPBIND does not help.
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
from typing import Iterable

__all__ = [
    "LINK_FLAGS",
    "compiler_shim",
    "inductor_compile_options",
    "WRAPPER_EXPORTS",
    "version_script",
    "elf_report",
    "elf_is_fixed",
    "package_is_fixed",
    "package_load_risk",
]

#: Appended to every link of a shared object (``-shared``) that Inductor makes.
#: ``--exclude-libs,ALL``: symbols that come from static archives (a libstdc++.a
#: that the compiler links in by default, as /opt/gcc/bin/g++ on the GPU
#: machine does) are not exported, so they cannot be unified with, or
#: interposed by, the libstdc++.so.6 that libtorch already loaded.
#: ``-Bsymbolic``: references to symbols the .so defines itself bind to its own
#: definitions at link time.
LINK_FLAGS: tuple[str, ...] = ("-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic")

#: Glob (version-script syntax) of the only symbols the AOTInductor wrapper
#: .so must export: the C entry points ``AOTInductorModelContainer*`` that
#: libtorch's loader looks up with dlsym.  Everything else becomes local.
WRAPPER_EXPORTS = "AOTInductor*"

#: Inductor names the AOTInductor wrapper library ``<hash>.wrapper.so``
#: (torch 2.11 and 2.13).  Only that link gets the version script, since other
#: libraries Inductor builds (ISA probes, kernels it loads with ctypes for
#: autotuning) must keep their exports.  If a future torch renames it,
#: :func:`package_is_fixed` fails the build instead of shipping a crash.
WRAPPER_SUFFIX = ".wrapper.so"

_SHIM_TEMPLATE = """#!/bin/sh
# poros-pack AOTInductor compiler shim, generated by tools/aoti_gpu/fix.py.
# Runs {real}
#  - linking any shared object: appends {link_flags}
#  - linking *{suffix}: also appends {wrapper_flags}
#  - always appends: {compile_flags}
REAL={real_q}
out=; prev=
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
case " $* " in
  *" -shared "*)
    set -- "$@"{link_args}
    case "$out" in *{suffix}) set -- "$@"{wrapper_args} ;; esac ;;
esac
set -- "$@"{compile_args}
if [ -n "$POROS_AOTI_SHIM_LOG" ]; then printf '%s\\n' "$REAL $*" >> "$POROS_AOTI_SHIM_LOG"; fi
exec "$REAL" "$@"
"""


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def _shim_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = os.path.join(base, "poros-pack", "aoti-cxx-shim")
    try:
        os.makedirs(d, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    d = os.path.join(tempfile.gettempdir(), f"poros-aoti-cxx-shim-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    return d


def _write_once(path: str, text: str, mode: int) -> str:
    try:
        with open(path) as f:
            if f.read() == text and (os.stat(path).st_mode & 0o777) == mode:
                return path
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def version_script(exports: str = WRAPPER_EXPORTS) -> str:
    """Write (once) and return the path of a version script exporting ``exports`` only."""
    text = "{ global: %s; local: *; };\n" % exports
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return _write_once(os.path.join(_shim_dir(), f"poros-{digest}.map"), text, 0o644)


def compiler_shim(
    real_cxx: str | None = None,
    link_flags: Iterable[str] = LINK_FLAGS,
    wrapper_link_flags: Iterable[str] | None = None,
    compile_flags: Iterable[str] = (),
) -> str:
    """Write (once, content-addressed) and return the path of the compiler shim.

    ``real_cxx``: the compiler to run (default: ``$CXX``, else ``g++`` on PATH,
    i.e. the compiler Inductor would have used).  ``link_flags`` are appended to
    commands that contain ``-shared``; ``wrapper_link_flags`` (default: the
    version script of :func:`version_script`) to those whose output ends with
    :data:`WRAPPER_SUFFIX`; ``compile_flags`` to every command.  Flags must not
    contain white space.
    """
    if sys.platform != "linux":
        raise RuntimeError("the AOTInductor compiler shim is for Linux only")
    wanted = real_cxx or os.environ.get("CXX") or "g++"
    real = shutil.which(wanted)
    if real is None:
        raise RuntimeError(f"C++ compiler {wanted!r} not found; AOTInductor needs one to build")
    real = os.path.abspath(real)
    # Inductor chooses gcc/clang specific flags from the compiler *name*.
    family = "clang++" if "clang" in os.path.basename(real) else "g++"
    link_flags, compile_flags = tuple(link_flags), tuple(compile_flags)
    wrapper_link_flags = (f"-Wl,--version-script={version_script()}",) \
        if wrapper_link_flags is None else tuple(wrapper_link_flags)
    for f in link_flags + wrapper_link_flags + compile_flags:
        if not f or any(c.isspace() for c in f):
            raise ValueError(f"bad flag {f!r}")
    q = lambda flags: "".join(" " + _sh_quote(f) for f in flags)  # noqa: E731
    text = _SHIM_TEMPLATE.format(
        real=real,
        real_q=_sh_quote(real),
        suffix=WRAPPER_SUFFIX,
        link_flags=" ".join(link_flags) or "(nothing)",
        wrapper_flags=" ".join(wrapper_link_flags) or "(nothing)",
        compile_flags=" ".join(compile_flags) or "(nothing)",
        link_args=q(link_flags),
        wrapper_args=q(wrapper_link_flags),
        compile_args=q(compile_flags),
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return _write_once(os.path.join(_shim_dir(), f"poros-{digest}-{family}"), text, 0o755)


def inductor_compile_options(device: str) -> dict:
    """Extra ``inductor_configs`` for ``torch._inductor.aoti_compile_and_package``.

    Returns ``{"cpp.cxx": <shim path>}`` on Linux for every device type (the
    crash comes from how the wrapper .so is linked, not from CUDA: a CPU package
    built on the GPU machine crashes the same way).  Returns ``{}`` elsewhere.
    Merge it with your own configs; if you choose the compiler yourself, pass
    it as ``compiler_shim(real_cxx=...)`` instead of setting ``cpp.cxx``.
    """
    del device  # same fix for cuda, xpu and cpu
    if sys.platform != "linux":
        return {}
    return {"cpp.cxx": compiler_shim()}


# --------------------------------------------------------------------------
# Pure-Python check (no binutils needed) of how a wrapper .so was linked.
_PT_DYNAMIC, _SHT_DYNSYM = 2, 11
_DT_NULL, _DT_SYMBOLIC, _DT_FLAGS, _DF_SYMBOLIC = 0, 16, 30, 0x2
_STB_GNU_UNIQUE = 10
# std::locale::, std::locale::facet, std::ios_base:: -- defined only by libstdc++ itself.
_LIBSTDCXX_MARKERS = (b"_ZNSt6locale", b"_ZNKSt6locale", b"_ZNSt8ios_base")


def elf_report(data: bytes) -> dict | None:
    """Facts about a 64-bit little-endian ELF shared object, or None if it is not one.

    ``symbolic``: linked with -Bsymbolic (DT_SYMBOLIC or DF_SYMBOLIC set).
    ``exported``: number of defined symbols in .dynsym.
    ``unique``: how many of them are STB_GNU_UNIQUE (bound process-wide by the
    dynamic linker to the first definition loaded, whatever -Bsymbolic says).
    ``cxx_exported``: how many are C++ (mangled ``_Z...``) symbols, e.g. the
    std:: library code or template instantiations the .so carries.
    ``libstdcxx_exported``: how many are libstdc++ *library* internals
    (std::locale, facets, ios_base): the .so carries and exports its own
    static libstdc++ -- the crash signature.
    ``other_exported``: names of exported symbols that are not
    :data:`WRAPPER_EXPORTS` entry points (first 10).
    """
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 0x36)
    rep: dict = {"symbolic": False, "exported": 0, "unique": 0, "cxx_exported": 0,
                 "libstdcxx_exported": 0, "other_exported": []}
    for i in range(e_phnum):
        p_type, _f, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type != _PT_DYNAMIC:
            continue
        for j in range(p_filesz // 16):
            tag, val = struct.unpack_from("<qQ", data, p_offset + 16 * j)
            if tag == _DT_NULL:
                break
            if tag == _DT_SYMBOLIC or (tag == _DT_FLAGS and val & _DF_SYMBOLIC):
                rep["symbolic"] = True
    shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
             for i in range(e_shnum)]
    prefix = WRAPPER_EXPORTS.rstrip("*").encode()
    for sh in shdrs:
        sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
        if sh_type != _SHT_DYNSYM or not sh_entsize:
            continue
        str_off = shdrs[sh_link][4]
        for k in range(1, sh_size // sh_entsize):
            st_name, st_info, _other, st_shndx = struct.unpack_from(
                "<IBBH", data, sh_offset + k * sh_entsize)
            if st_shndx == 0:  # undefined: imported from elsewhere
                continue
            end = data.index(b"\0", str_off + st_name)
            name = data[str_off + st_name:end]
            rep["exported"] += 1
            rep["unique"] += st_info >> 4 == _STB_GNU_UNIQUE
            rep["cxx_exported"] += name.startswith(b"_Z")
            rep["libstdcxx_exported"] += name.startswith(_LIBSTDCXX_MARKERS)
            if not name.startswith(prefix) and len(rep["other_exported"]) < 10:
                rep["other_exported"].append(name.decode(errors="replace"))
    return rep


def elf_is_fixed(data: bytes) -> bool:
    """True if the wrapper .so exports only its C entry points and binds to itself."""
    rep = elf_report(data)
    return bool(rep and rep["symbolic"] and rep["exported"] and not rep["other_exported"])


def package_is_fixed(pt2: str | os.PathLike | bytes) -> bool:
    """True if every shared object in the .pt2 package was built with the fix."""
    src = io.BytesIO(pt2) if isinstance(pt2, bytes) else os.fspath(pt2)
    with zipfile.ZipFile(src) as z:
        sos = [n for n in z.namelist() if n.endswith(".so")]
        return bool(sos) and all(elf_is_fixed(z.read(n)) for n in sos)


def package_load_risk(pt2: str | os.PathLike | bytes) -> str | None:
    """Why loading this .pt2 would crash the process, or None if no known risk.

    Flags wrapper libraries that export their own (statically linked)
    libstdc++, which segfault or throw std::bad_cast on load in a process that
    also has libstdc++.so.6 (any process with torch).  Packages built with the
    fix, or with a compiler that links libstdc++.so.6 dynamically, pass.
    """
    src = io.BytesIO(pt2) if isinstance(pt2, bytes) else os.fspath(pt2)
    with zipfile.ZipFile(src) as z:
        for n in z.namelist():
            if not n.endswith(".so"):
                continue
            rep = elf_report(z.read(n))
            if rep and rep["libstdcxx_exported"]:
                return (f"{n} exports {rep['libstdcxx_exported']} symbols of its own statically "
                        "linked libstdc++ (std::locale/ios_base); loading it next to "
                        "libstdc++.so.6 crashes (see docs/aoti-cuda-load-crash.md). "
                        "Rebuild the engine with the AOTInductor link fix.")
    return None
