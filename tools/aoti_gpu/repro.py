#!/usr/bin/env python3
"""Reproduce and test fixes for the AOTInductor .pt2 load-time crash (GPU machine).

One command does everything, each step in its own subprocess (so a segfault is
seen as a return code, -11, and never ends this script):

    PYTHONUNBUFFERED=1 python3 tools/aoti_gpu/repro.py all --out "$OUT" \
        --variants base,fix,exclude,sysgxx,base_cpu,fix_cpu --extra-loads ld_debug

 1. diag:   torch / toolchain / libstdc++ facts ($CXX, what it links, which
            loaded libraries export std::regex instantiations).
 2. build:  the same tiny model (conv+relu+linear, dynamic batch via
            torch.export Dim) with aoti_compile_and_package, once per build
            variant (see VARIANTS: baseline, the fix from fix.py, and
            alternatives; *_cpu = a CPU package), in parallel, each with its own
            Inductor cache directory.
 3. inspect: the wrapper .so of each package: NEEDED, FLAGS, exported symbols,
            fix.elf_report(), and the compile/link commands.
 4. load:   each package loaded and run in a subprocess, with
            torch._inductor.aoti_load_package and with
            torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, device_index),
            batches 3 and 7, compared with eager (max abs error).
            --extra-loads: ld_debug (LD_DEBUG=scopes,bindings for base and fix:
            which library each wrapper reference was bound to), gdb (native
            backtrace of the baseline crash with cuda-gdb/gdb), workarounds
            (load-time only: LD_PRELOAD of libstdc++, RTLD_DEEPBIND pre-dlopen).

Writes under --out: results.json, summary.txt, diag.txt, inspect.txt,
evidence.txt and logs.tar.gz (all child logs).  Runs on CPU too (--device cpu;
variants "static"/"staticfix" reproduce the crash mechanism with any g++).
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fix  # noqa: E402  (tools/aoti_gpu/fix.py; no torch import at module level)

SELF = os.path.abspath(__file__)
BATCHES = (3, 7)  # run-time batch sizes (the export example uses 4)

# ----------------------------------------------------------------------------- model


def make_model():
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            y = self.relu(self.conv(x))
            return self.fc(torch.flatten(y, 1))

    torch.manual_seed(0)
    return Tiny().eval()


def make_input(batch, device):
    import torch

    g = torch.Generator().manual_seed(1000 + batch)
    return torch.randn(batch, 3, 8, 8, generator=g).to(device)


# ----------------------------------------------------------------------------- build variants


def _variant_configs(name: str, device: str, workdir: str) -> dict:
    """inductor_configs for each build variant (evaluated in the build child)."""
    name = name.replace("_cpu", "")
    if name == "base":
        return {}
    if name == "fix":  # exactly what the packager passes
        return fix.inductor_compile_options(device)
    if name == "exclude":  # only the flags applied to every -shared link
        return {"cpp.cxx": fix.compiler_shim(wrapper_link_flags=())}
    if name == "vscript":  # only the version script on the wrapper link
        return {"cpp.cxx": fix.compiler_shim(link_flags=())}
    if name == "bsym":
        return {"cpp.cxx": fix.compiler_shim(link_flags=["-Wl,-Bsymbolic"], wrapper_link_flags=())}
    if name == "nounique":
        return {"cpp.cxx": fix.compiler_shim(link_flags=(), wrapper_link_flags=(),
                                             compile_flags=["-fno-gnu-unique"])}
    if name == "hidden":
        return {"cpp.cxx": fix.compiler_shim(link_flags=(), wrapper_link_flags=(),
                                             compile_flags=["-fvisibility=hidden",
                                                            "-fvisibility-inlines-hidden"])}
    if name == "static":  # what /opt/gcc/bin/g++ does by default, with any g++
        return {"cpp.cxx": fix.compiler_shim(link_flags=["-static-libstdc++"], wrapper_link_flags=())}
    if name == "staticfix":  # the fix on top of a static-libstdc++ link
        return {"cpp.cxx": fix.compiler_shim(link_flags=fix.LINK_FLAGS + ("-static-libstdc++",))}
    if name == "sysgxx":  # no fix; the distribution's g++ instead of $CXX
        return {"cpp.cxx": "/usr/bin/g++"}
    raise ValueError(name)


VARIANTS = {
    "base": "default aoti_compile_and_package (no fix; compiler = $CXX or g++)",
    "fix": "fix.inductor_compile_options(): every .so -Wl,--exclude-libs,ALL -Wl,-Bsymbolic; "
           "*.wrapper.so also --version-script (export AOTInductor* only)",
    "exclude": "only -Wl,--exclude-libs,ALL -Wl,-Bsymbolic (no version script)",
    "vscript": "only the version script on *.wrapper.so",
    "bsym": "only -Wl,-Bsymbolic",
    "nounique": "only -fno-gnu-unique",
    "hidden": "only -fvisibility=hidden -fvisibility-inlines-hidden",
    "static": "no fix, link -static-libstdc++ (emulates /opt/gcc/bin/g++ with any g++)",
    "staticfix": "the fix + -static-libstdc++",
    "sysgxx": "no fix, cpp.cxx=/usr/bin/g++ (ignore $CXX)",
}
for _k in list(VARIANTS):
    VARIANTS[_k + "_cpu"] = VARIANTS[_k] + " [CPU package]"


def variant_device(v: str, default: str) -> str:
    return "cpu" if v.endswith("_cpu") else default


def child_build(args) -> int:
    import torch

    os.makedirs(args.work, exist_ok=True)
    cfg = _variant_configs(args.variant, args.device, args.work)
    print("variant", args.variant, "inductor_configs", cfg, flush=True)
    model = make_model().to(args.device)
    x = make_input(4, args.device)
    batch = torch.export.Dim("batch", min=1, max=64)
    t0 = time.time()
    ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    path = torch._inductor.aoti_compile_and_package(
        ep, package_path=args.pkg, inductor_configs=dict(cfg, force_disable_caches=True))
    print(f"built {path} in {time.time() - t0:.1f}s size={os.path.getsize(path)}", flush=True)
    return 0


# ----------------------------------------------------------------------------- load methods


def _extract(pkg: str) -> tuple[str, str]:
    d = tempfile.mkdtemp(prefix="aoti_x_")
    with zipfile.ZipFile(pkg) as z:
        z.extractall(d)
    sos = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".so")]
    if len(sos) != 1:
        raise RuntimeError(f"expected one .so in {pkg}, got {sos}")
    return d, sos[0]


def child_load(args) -> int:
    import faulthandler

    faulthandler.enable()
    import torch

    dev = args.device
    res = {"method": args.method, "pkg": args.pkg}

    def stage(s):
        print("stage:", s, flush=True)
        res["stage"] = s

    stage("load")
    if args.method == "load_package":
        m = torch._inductor.aoti_load_package(args.pkg)
        call = lambda x: m(x)  # noqa: E731
    elif args.method == "pkg_loader":
        idx = torch.cuda.current_device() if dev == "cuda" else -1
        loader = torch._C._aoti.AOTIModelPackageLoader(args.pkg, "model", False, 1, idx)
        call = lambda x: loader.run([x])[0]  # noqa: E731
    elif args.method in ("runner", "runner_deepbind"):
        d, so = _extract(args.pkg)
        if args.method == "runner_deepbind":
            import ctypes

            # pre-load the wrapper with RTLD_DEEPBIND; the runner's dlopen of the same
            # path then returns this handle, already relocated with local-first lookup
            ctypes.CDLL(so, mode=os.RTLD_NOW | os.RTLD_LOCAL | os.RTLD_DEEPBIND)
            print("pre-dlopened with RTLD_DEEPBIND:", so, flush=True)
        if dev == "cuda":
            runner = torch._C._aoti.AOTIModelContainerRunnerCuda(so, 1, "cuda", os.path.dirname(so))
        else:
            runner = torch._C._aoti.AOTIModelContainerRunnerCpu(so, 1)
        call = lambda x: runner.run([x])[0]  # noqa: E731
    else:
        raise ValueError(args.method)
    stage("run")
    model = make_model().to(dev)
    errs = {}
    with torch.no_grad():
        for b in BATCHES:
            x = make_input(b, dev)
            out = call(x)
            if isinstance(out, (list, tuple)):
                out = out[0]
            ref = model(x)
            if out.shape != ref.shape:
                raise RuntimeError(f"shape {tuple(out.shape)} != {tuple(ref.shape)}")
            errs[b] = float((out.float() - ref.float()).abs().max())
    if dev == "cuda":
        torch.cuda.synchronize()
    stage("done")
    res["max_abs_err"] = max(errs.values())
    res["err_by_batch"] = errs
    res["ok"] = bool(res["max_abs_err"] < 1e-3)
    print("RESULT " + json.dumps(res), flush=True)
    with open(args.result, "w") as f:
        json.dump(res, f)
    return 0 if res["ok"] else 3


# ----------------------------------------------------------------------------- diag child


def _sh(cmd: str, timeout: int = 60) -> str:
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        return (p.stdout + p.stderr).rstrip()
    except subprocess.TimeoutExpired:
        return f"<timeout: {cmd}>"


def child_diag(args) -> int:
    import torch

    out = []
    p = lambda *a: out.append(" ".join(str(x) for x in a))  # noqa: E731
    p("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
    if args.device == "cuda":
        torch.zeros(1, device="cuda")
        p("device", torch.cuda.get_device_name(0), "cc", torch.cuda.get_device_capability(0))
    p("torch._C._GLIBCXX_USE_CXX11_ABI =", torch._C._GLIBCXX_USE_CXX11_ABI)
    p("torch build:", " | ".join(torch.__config__.show().splitlines()[1:3]))
    import torch._inductor.config as icfg
    from torch._inductor import cpp_builder

    p("inductor cpp.cxx =", icfg.cpp.cxx, "-> get_cpp_compiler() =", cpp_builder.get_cpp_compiler())
    keys = [k for k in icfg.get_config_copy() if re.search(r"cxx|flag|link|visib|compile_wrapper", k)]
    p("inductor config keys (cxx|flag|link|visib):", keys)
    src = open(cpp_builder.__file__).read().splitlines()
    hits = [f"  cpp_builder.py:{i + 1}: {l.strip()}" for i, l in enumerate(src)
            if re.search(r"Bsymbolic|visibility|static-libstdc|GLIBCXX_USE_CXX11_ABI", l)]
    p("cpp_builder.py lines mentioning Bsymbolic/visibility/static-libstdc/ABI:")
    out.extend(hits or ["  (none)"])
    p("AOTIModelPackageLoader.__init__:", torch._C._aoti.AOTIModelPackageLoader.__init__.__doc__.strip())
    if hasattr(torch._C._aoti, "AOTIModelContainerRunnerCuda"):
        p("AOTIModelContainerRunnerCuda.__init__:",
          torch._C._aoti.AOTIModelContainerRunnerCuda.__init__.__doc__.strip().replace("\n", " "))
    p("--- toolchain")
    p(_sh("for c in gcc g++ c++ cc clang++; do printf '%s -> ' $c; command -v $c || echo none; done"))
    p(_sh("g++ --version | head -1; g++ -dumpfullversion; ls /usr/bin/ | grep -E '^(g\\+\\+|gcc|clang)' | tr '\\n' ' '"))
    p("env:", _sh("env | grep -E '^(CXX|CC|CXXFLAGS|LDFLAGS|CPATH|LIBRARY_PATH|LD_LIBRARY_PATH)=' | sort"))
    cxx = os.environ.get("CXX", "")
    if cxx:
        p(f"$CXX = {cxx}:", _sh(f"ls -la {cxx}; file -L {cxx} 2>/dev/null | cut -c1-200; {cxx} --version | head -1"))
        p("  first line:", _sh(f"head -c 200 {cxx} | head -1 | grep -a '^#!' || echo '(not a script)'"))
        p("  configured:", _sh(f"{cxx} -v 2>&1 | grep -o -- '--prefix=[^ ]*\\|--enable-static[^ ]*\\|--with-[a-z-]*libstdc[^ ]*' | tr '\\n' ' '"))
        p("  specs mentioning static-libstdc++ / lstdc++:",
          _sh(f"{cxx} -dumpspecs | grep -n 'static-libstdc\\|lstdc' | head -5"))
        p("  its libstdc++.a / .so:", _sh(f"{cxx} -print-file-name=libstdc++.a; {cxx} -print-file-name=libstdc++.so"))
    p("--- tiny .so using std::string + std::locale, linked by each compiler:")
    with open("/tmp/poros_t.cpp", "w") as f:
        f.write("#include <string>\n#include <locale>\n"
                "int f(const char* s){ std::locale l; return (int)std::string(s).size(); }\n")
    for c in dict.fromkeys(filter(None, [cxx, "/usr/bin/g++"])):
        p(f"  {c}:", _sh(f"{c} -shared -fPIC /tmp/poros_t.cpp -o /tmp/poros_t.so && "
                         "echo NEEDED: $(readelf -d /tmp/poros_t.so | grep NEEDED | sed 's/.*\\[//;s/\\]//' | tr '\\n' ' ')"
                         "'| exported std::locale symbols:' $(nm -D --defined-only -C /tmp/poros_t.so | grep -c 'std::locale')"))
    p("g++ libstdc++:", _sh("readlink -f $(g++ -print-file-name=libstdc++.so.6)"))
    p("g++ libstdc++.a:", _sh("g++ -print-file-name=libstdc++.a"))
    maps = open("/proc/self/maps").read()
    libs = sorted({l.split()[-1] for l in maps.splitlines() if ".so" in l.split()[-1]})
    p("libstdc++ mapped in this python:", [l for l in libs if "libstdc++" in l])
    p("newest GLIBCXX in it:", _sh(
        "strings %s | grep -E '^GLIBCXX_[0-9.]+$' | sort -V | tail -1" % [l for l in libs if "libstdc++" in l][0]))
    tl = os.path.join(os.path.dirname(torch.__file__), "lib")
    p("ldd libtorch_cpu.so (libstdc++/libgcc):", _sh(f"ldd {tl}/libtorch_cpu.so | grep -E 'stdc|gcc_s'"))
    p("libtorch_global_deps.so NEEDED:", _sh(
        f"readelf -d {tl}/libtorch_global_deps.so | grep NEEDED | sed 's/.*\\[//;s/\\]//' | tr '\\n' ' '"))
    p("--- libraries mapped after import torch (+CUDA init) that EXPORT std::regex instantiations")
    p("    (nm -D --defined-only -C | grep -c 'regex'; only non-zero shown)")

    def count(lib):
        n = _sh(f"nm -D --defined-only -C {lib} 2>/dev/null | grep -c 'std::__detail.*regex\\|regex_traits'")
        return lib, int(n) if n.isdigit() else -1

    with cf.ThreadPoolExecutor(8) as ex:
        for lib, n in ex.map(count, libs):
            if n:
                p(f"  {n:5d}  {lib}")
    text = "\n".join(out)
    print(text)
    with open(args.result, "w") as f:
        f.write(text + "\n")
    return 0


# ----------------------------------------------------------------------------- orchestration helpers


def run_child(argv, log, timeout, env=None, prefix=()):
    cmd = list(prefix) + [sys.executable, SELF] + argv
    t0 = time.time()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                               env=dict(os.environ, **(env or {})))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return rc, round(time.time() - t0, 1)


def tail(path, n=6):
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def inspect_package(pkg: str, work: str) -> dict:
    info = {}
    d = os.path.join(work, "x")
    shutil.rmtree(d, ignore_errors=True)
    with zipfile.ZipFile(pkg) as z:
        info["members"] = [f"{i.filename} ({i.file_size})" for i in z.infolist()]
        z.extractall(d)
        info["package_is_fixed"] = fix.package_is_fixed(pkg)
        info["elf_report"] = [fix.elf_report(z.read(n)) for n in z.namelist() if n.endswith(".so")]
    sos = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".so")]
    info["so"] = [os.path.relpath(s, d) for s in sos]
    for so in sos[:1]:
        info["dynamic"] = _sh(f"readelf -d {so} | grep -E 'NEEDED|FLAGS|RUNPATH|RPATH|SYMBOLIC'")
        info["ldd"] = _sh(f"ldd {so} | grep -E 'stdc|gcc_s|torch|c10|cuda'")
        info["regex_defined_exported"] = int(_sh(
            f"nm -D --defined-only -C {so} | grep -c 'std::__detail.*regex\\|regex_traits'") or 0)
        info["regex_undefined"] = int(_sh(
            f"nm -D --undefined-only -C {so} | grep -c 'std::__detail.*regex\\|regex_traits'") or 0)
        info["unique_symbols_u"] = int(_sh(f"nm -D --defined-only {so} | grep -c ' u '") or 0)
        info["exported_defined_total"] = int(_sh(f"nm -D --defined-only {so} | wc -l") or 0)
        info["regex_sample"] = _sh(
            f"nm -D --defined-only -C {so} | grep 'std::__detail.*regex\\|regex_traits' | cut -c1-160 | head -8")
        info["gcc_ident_strings"] = _sh(f"strings -a {so} | grep '^GCC: (' | sort | uniq -c")
        info["libstdcxx_library_syms_exported"] = int(_sh(
            f"nm -D --defined-only -C {so} | grep -c 'std::locale::\\|std::codecvt<\\|std::ios_base::'") or 0)
        info["relocs_to_regex_syms"] = int(_sh(
            f"readelf -rW {so} | c++filt | grep -c 'std::__detail.*regex\\|regex_traits'") or 0)
    cpps = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".cpp")]
    cmds = []
    for c in cpps:
        for l in open(c, errors="replace"):
            if l.startswith("// ") and ("g++" in l or "clang" in l or "-shared" in l):
                cmds.append(l.strip()[:600])
    info["cmds_in_cpp"] = cmds[:4]
    return info


LD_BIND = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: (?:normal|protected) symbol `([^']+)'")


def summarize_ld_debug(ddir: str, so_name: str, defined: set) -> str:
    """Where the wrapper's symbol references were bound at load time.

    ``defined``: mangled names the wrapper .so itself exports (nm -D --defined-only);
    a reference to one of them bound to ANOTHER library is an interposition.
    """
    out = []
    files = [os.path.join(ddir, f) for f in os.listdir(ddir)] if os.path.isdir(ddir) else []
    targets = collections.Counter()
    interposed = collections.defaultdict(list)
    scope_lines = []
    for fn in files:
        lines = open(fn, errors="replace").read().splitlines()
        for i, l in enumerate(lines):
            if "object=" in l and so_name in l:
                scope_lines = [l.split(":", 1)[-1].strip()[:200]] + [
                    x.split(":", 1)[-1].strip()[:1500] for x in lines[i + 1:i + 4] if "scope" in x]
            m = LD_BIND.search(l)
            if not m or so_name not in m.group(1):
                continue
            _src, dst, sym = m.groups()
            targets[os.path.basename(dst)] += 1
            if sym in defined and so_name not in dst:
                interposed[os.path.basename(dst)].append(sym)
    out.append(f"ld debug files: {len(files)}; wrapper = *{so_name} (exports {len(defined)} symbols)")
    out.append("wrapper lookup scopes (scope 0 = global, searched first):")
    out.extend("   " + s for s in scope_lines)
    out.append("bindings of the wrapper's references, by defining library: "
               + json.dumps(targets.most_common(12)))
    n = sum(len(v) for v in interposed.values())
    out.append(f"references to symbols the wrapper DEFINES ITSELF that were bound to another library: {n}")
    for lib, syms in interposed.items():
        dem = _sh("c++filt " + " ".join(f"'{x}'" for x in syms[:400])).splitlines()
        out.append(f"  -> {lib}: {len(syms)} symbols, e.g.")
        key = [d for d in dem if re.search(r"locale|facet|::id\b|collate|ctype|codecvt", d)]
        for d in (key[:10] + [d for d in dem if d not in key][:4]):
            out.append(f"       {d[:200]}")
    return "\n".join(out)


def main_all(args) -> int:
    t_start = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="aoti_repro_")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    dev = args.device
    results = {"device": dev, "variants": {}, "loads": [], "timing": {}}
    summary = []

    def say(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        summary.append(s)

    # 1. diag (in parallel with the builds)
    variants = args.variants.split(",")
    with cf.ThreadPoolExecutor(len(variants) + 1) as ex:
        fdiag = ex.submit(run_child, ["diag", "--device", dev, "--result", os.path.join(out, "diag.txt")],
                          os.path.join(logs, "diag.log"), 300)
        fb = {}
        for v in variants:
            vw = os.path.join(work, v)
            os.makedirs(vw, exist_ok=True)
            env = {"TORCHINDUCTOR_CACHE_DIR": os.path.join(vw, "inductor_cache"),
                   "POROS_AOTI_SHIM_LOG": os.path.join(vw, "shim.log")}
            fb[v] = ex.submit(run_child, ["build", "--variant", v, "--device", variant_device(v, dev),
                                          "--work", vw,
                                          "--pkg", os.path.join(vw, f"{v}.pt2")],
                              os.path.join(logs, f"build_{v}.log"), args.build_timeout, env)
        for v in variants:
            rc, dt = fb[v].result()
            results["variants"][v] = {"desc": VARIANTS[v], "build_rc": rc, "build_s": dt}
            print(f"build {v}: rc={rc} {dt}s", flush=True)
            if rc != 0:
                print(tail(os.path.join(logs, f"build_{v}.log"), 15), flush=True)
        rc, dt = fdiag.result()
        print(f"diag rc={rc} {dt}s", flush=True)
    results["timing"]["builds_done_s"] = round(time.time() - t_start, 1)
    diag_txt = open(os.path.join(out, "diag.txt")).read() if os.path.exists(os.path.join(out, "diag.txt")) \
        else tail(os.path.join(logs, "diag.log"), 40)
    print("=" * 30, "DIAG\n" + diag_txt, flush=True)

    # 2. inspect packages
    insp_txt = []
    so_names = {}
    wrapper_defined = {}
    for v in variants:
        pkg = os.path.join(work, v, f"{v}.pt2")
        if not os.path.exists(pkg):
            continue
        try:
            info = inspect_package(pkg, os.path.join(work, v))
        except Exception as e:  # noqa: BLE001
            info = {"error": repr(e)}
        shim_log = os.path.join(work, v, "shim.log")
        if os.path.exists(shim_log):
            info["shim_link_cmds"] = [l.strip()[-400:] for l in open(shim_log) if " -shared " in l]
        results["variants"][v]["inspect"] = info
        if info.get("so"):
            so_names[v] = os.path.basename(info["so"][0])
            so_path = os.path.join(work, v, "x", info["so"][0])
            wrapper_defined[v] = set(_sh(
                f"nm -D --defined-only --format=posix {so_path} | cut -d' ' -f1").split())
        insp_txt.append(f"### {v}: {VARIANTS[v]}\n" + "\n".join(
            f"{k}: {val if not isinstance(val, list) else chr(10).join('   ' + str(x) for x in val)}"
            for k, val in info.items() if k != "members"))
    with open(os.path.join(out, "inspect.txt"), "w") as f:
        f.write("\n\n".join(insp_txt) + "\n")
    print("=" * 30, "INSPECT (short)", flush=True)
    for v in variants:
        i = results["variants"][v].get("inspect", {})
        print(f"{v:9s} fixed={i.get('package_is_fixed')} elf={i.get('elf_report')} regex_exported={i.get('regex_defined_exported')} "
              f"regex_relocs={i.get('relocs_to_regex_syms')} u_syms={i.get('unique_symbols_u')} "
              f"exported={i.get('exported_defined_total')}", flush=True)

    # 3. loads
    jobs = []
    for v in variants:
        pkg = os.path.join(work, v, f"{v}.pt2")
        if not os.path.exists(pkg):
            continue
        for m in ("load_package", "pkg_loader"):
            jobs.append((v, m, {}, ()))
    extras = set(filter(None, args.extra_loads.split(",")))
    if "base" in so_names and "workarounds" in extras:  # load-time workarounds, no rebuild
        jobs.append(("base", "runner", {}, ()))
        jobs.append(("base", "runner_deepbind", {}, ()))
        libstdcxx = _sh("readlink -f $(g++ -print-file-name=libstdc++.so.6)")
        if os.path.exists(libstdcxx):
            jobs.append(("base", "load_package+LD_PRELOAD", {"LD_PRELOAD": libstdcxx}, ()))
    for v in ("base", "fix"):
        if v in so_names and "ld_debug" in extras:
            jobs.append((v, "load_package+LD_DEBUG",
                         {"LD_DEBUG": "scopes,bindings",
                          "LD_DEBUG_OUTPUT": os.path.join(work, f"lddebug_{v}", "ld")}, ()))
            os.makedirs(os.path.join(work, f"lddebug_{v}"), exist_ok=True)
    gdb = shutil.which("cuda-gdb") or shutil.which("gdb")
    if gdb and "base" in so_names and "gdb" in extras:
        jobs.insert(0, ("base", "load_package+gdb", {},
                        (gdb, "-q", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
                         "-ex", "handle SIGSEGV stop print", "-ex", "run", "-ex", "bt 25",
                         "-ex", "info symbol $pc", "-ex", "x/3i $pc", "--args")))

    deadline = t_start + args.budget

    def do_load(job):
        v, m, env, prefix = job
        meth = m.split("+")[0]
        tag = f"{v}_{m.replace('+', '_')}"
        resf = os.path.join(work, f"res_{tag}.json")
        timeout = min(args.gdb_timeout if "gdb" in m else args.load_timeout, int(deadline - time.time()))
        if timeout < 20:
            return {"variant": v, "method": m, "rc": "skipped", "s": 0, "ok": False,
                    "max_abs_err": None, "err_by_batch": None, "log_tail": "skipped: out of time"}
        rc, dt = run_child(["load", "--method", meth, "--device", variant_device(v, dev), "--result", resf,
                            "--pkg", os.path.join(work, v, f"{v}.pt2")],
                           os.path.join(logs, f"load_{tag}.log"), timeout, env, prefix)
        r = json.load(open(resf)) if os.path.exists(resf) else {}
        return {"variant": v, "method": m, "rc": rc, "s": dt, "ok": r.get("ok", False),
                "max_abs_err": r.get("max_abs_err"), "err_by_batch": r.get("err_by_batch"),
                "log_tail": tail(os.path.join(logs, f"load_{tag}.log"), 8)}

    with cf.ThreadPoolExecutor(args.jobs) as ex:
        for r in ex.map(do_load, jobs):
            results["loads"].append(r)
            print(f"load {r['variant']:9s} {r['method']:26s} rc={r['rc']} ok={r['ok']} "
                  f"err={r['max_abs_err']} {r['s']}s", flush=True)
    results["timing"]["loads_done_s"] = round(time.time() - t_start, 1)

    # 4. evidence
    ev = []
    for v in ("base", "fix"):
        if v in so_names:
            ev.append(f"===== LD_DEBUG=scopes,bindings while loading the '{v}' package")
            ev.append(summarize_ld_debug(os.path.join(work, f"lddebug_{v}"), so_names[v],
                                         wrapper_defined.get(v, set())))
    gl = os.path.join(logs, "load_base_load_package_gdb.log")
    if os.path.exists(gl):
        txt = open(gl, errors="replace").read().splitlines()
        keep = [l for l in txt if re.match(r"^(#\d+|Thread .* received|Program received|\S+ in section|=> )", l)
                or "SIGSEGV" in l]
        ev.append("===== native backtrace of the baseline load (%s)" % os.path.basename(gdb or ""))
        ev.extend(l[:400] for l in keep[:40])
    with open(os.path.join(out, "evidence.txt"), "w") as f:
        f.write("\n".join(ev) + "\n")
    print("=" * 30, "EVIDENCE\n" + "\n".join(ev), flush=True)

    # 5. table
    say("=" * 30, "RESULTS", "device:", dev, "| elapsed %.0fs" % (time.time() - t_start))
    say(f"{'variant':9s} | {'load method':26s} | {'rc':>7s} | {'ok':5s} | max_abs_err")
    say("-" * 75)
    for r in results["loads"]:
        err = "-" if r["max_abs_err"] is None else f"{r['max_abs_err']:.3g}"
        say(f"{r['variant']:9s} | {r['method']:26s} | {str(r['rc']):>7s} | {str(r['ok']):5s} | {err}")
    say("variants: " + "; ".join(f"{k}={v}" for k, v in VARIANTS.items() if k in variants))
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(diag_txt + "\n\n" + "\n".join(summary) + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    with tarfile.open(os.path.join(out, "logs.tar.gz"), "w:gz") as t:
        t.add(logs, arcname="logs")
        for v in variants:
            s = os.path.join(work, v, "shim.log")
            if os.path.exists(s):
                t.add(s, arcname=f"logs/shim_{v}.log")
    base_crash = any(r["variant"] == "base" and r["method"] == "load_package" and r["rc"] != 0
                     for r in results["loads"])
    fix_ok = all(r["ok"] for r in results["loads"] if r["variant"] == "fix")
    say(f"VERDICT: baseline crashes={base_crash} fix loads+matches eager={fix_ok}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("all")
    a.add_argument("--out", default=os.environ.get("OUT", "out"))
    a.add_argument("--device", default="cuda")
    a.add_argument("--variants", default="base,fix,exclude,sysgxx,base_cpu,fix_cpu")
    a.add_argument("--extra-loads", default="ld_debug",
                   help="comma list of: ld_debug, gdb, workarounds")
    a.add_argument("--jobs", type=int, default=6)
    a.add_argument("--build-timeout", type=int, default=330)
    a.add_argument("--load-timeout", type=int, default=150)
    a.add_argument("--gdb-timeout", type=int, default=200)
    a.add_argument("--budget", type=int, default=530, help="seconds for the whole run")
    b = sub.add_parser("build")
    for k in ("--variant", "--pkg", "--work"):
        b.add_argument(k, required=True)
    b.add_argument("--device", default="cuda")
    l = sub.add_parser("load")
    for k in ("--method", "--pkg", "--result"):
        l.add_argument(k, required=True)
    l.add_argument("--device", default="cuda")
    d = sub.add_parser("diag")
    d.add_argument("--device", default="cuda")
    d.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    try:
        return {"all": main_all, "build": child_build, "load": child_load, "diag": child_diag}[args.cmd](args)
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
