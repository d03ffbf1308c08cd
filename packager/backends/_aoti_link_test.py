"""The AOTInductor link fix on a tiny C++ library, without Inductor: the shim appends the flags,
and the ELF check tells a private static libstdc++ from an exported one."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile

import pytest

from packager.backends._aoti_link import link_fix_configs, package_link_problems

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("g++") is None, reason="needs Linux and g++"
)

# Touches std::locale facets, the state that a second libstdc++ copy corrupts.
SOURCE = """
#include <locale>
#include <string>
extern "C" int AOTInductorModelProbe() {
    const auto& collate = std::use_facet<std::collate<char>>(std::locale());
    std::string text = "abc";
    return static_cast<int>(collate.hash(text.data(), text.data() + text.size()) & 1);
}
"""


def link(compiler: str, tmp_path) -> bytes:
    source = tmp_path / "probe.cpp"
    source.write_text(SOURCE)
    output = tmp_path / "probe.wrapper.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O0", "-static-libstdc++", str(source), "-o", str(output)],
        check=True, capture_output=True,
    )
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.write(output, "model/data/aotinductor/model/probe.wrapper.so")
    return package.getvalue()


def test_static_libstdcxx_without_the_fix_is_reported(tmp_path):
    problems = package_link_problems(link("g++", tmp_path))
    assert any("not linked -Bsymbolic" in p for p in problems)
    assert any("a statically linked libstdc++ must stay private" in p for p in problems)


def test_shim_links_wrappers_so_they_export_only_their_entry_points(tmp_path):
    shim = link_fix_configs("g++")["cpp.cxx"]
    assert shim.endswith("-g++")
    assert package_link_problems(link(shim, tmp_path)) == []


def test_shim_path_is_stable():
    assert link_fix_configs("g++") == link_fix_configs("g++")


def test_a_package_without_libraries_is_reported():
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("model/archive_format", "pt2")
    assert package_link_problems(package.getvalue()) == ["the package holds no shared library"]
