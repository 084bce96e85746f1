"""The names TensorRT's Python API defines, read from a `tensorrt-*-bindings` wheel without importing it.

The bindings are a pybind11 extension: every class, method, property and enum value it registers
is a NUL-terminated string in the module's read-only data; the package's __init__.py adds a few
Python helpers (nptype, volume, ...). This keeps each whole string that is a Python identifier
(a superset of the API names, but a finite one: a misspelt call is not in it) and writes them,
one a line, to engines/tensorrt/api_names/<major>.txt, which the tests' TensorRT fake accepts.

  python3 -m pip download --no-deps tensorrt-cu13-bindings -d /tmp/trtb           # 11.x
  python3 -m pip download --no-deps "tensorrt-cu12-bindings<11" -d /tmp/trtb10    # 10.x
  python3 scripts/tensorrt_api_names.py /tmp/trtb/*.whl /tmp/trtb10/*.whl
"""

from __future__ import annotations

import ast
import re
import struct
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "engines" / "tensorrt" / "api_names"
IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
MANGLED = re.compile(rb".*(N\d+[a-z_]|St\d+[a-z_])")  # C++ type info: N8nvinfer8IBuilderE, St9exception


def elf_sections(blob: bytes) -> dict[str, bytes]:
    """Section name → contents for a 64-bit little-endian ELF file."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x3A)
    heads = [struct.unpack_from("<IIQQQQIIQQ", blob, shoff + i * shentsize) for i in range(shnum)]
    names_off, names_size = heads[shstrndx][4], heads[shstrndx][5]
    names = blob[names_off:names_off + names_size]
    out = {}
    for h in heads:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        out[name] = blob[h[4]:h[4] + h[5]] if h[1] != 8 else b""  # 8: SHT_NOBITS
    return out


def extension_names(blob: bytes) -> set[str]:
    """Identifier strings and their word tails, without C++ type-info (mangled) names.

    The linker stores a string that ends another once ("num_errors" inside "get_num_errors",
    "Runtime" inside "IRuntime", "INT8" inside "UINT8"), so tails count too: every tail of an
    upper-case constant, and tails that start a word (after "_", or a capital before a
    lower-case letter) of the others.
    """
    rodata = elf_sections(blob)[".rodata"]
    names = set()
    for s in rodata.split(b"\0"):
        if not IDENT.fullmatch(s) or MANGLED.match(s):
            continue
        text = s.decode()
        names.add(text)
        if text.startswith("__"):
            continue
        for i in range(1, len(text)):
            after_underscore = text[i - 1] == "_" and text[i].isalnum()
            camel_word = text[i].isupper() and i + 1 < len(text) and text[i + 1].islower()
            if (text.isupper() or after_underscore or camel_word) and text[i:].isidentifier():
                names.add(text[i:])
    return names


def python_names(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def wheel_names(wheel: Path) -> tuple[str, set[str]]:
    """(TensorRT version, names) of one bindings wheel."""
    with zipfile.ZipFile(wheel) as zf:
        files = zf.namelist()
        init = zf.read(next(f for f in files if f.endswith("/__init__.py") and f.count("/") == 1))
        version = re.search(rb'__version__ = "([^"]+)"', init).group(1).decode()
        names = python_names(init.decode())
        for so in (f for f in files if f.endswith(".so") and f.count("/") == 1):
            names |= extension_names(zf.read(so))
    return version, names


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for wheel in map(Path, argv):
        version, names = wheel_names(wheel)
        path = OUT / f"{version.split('.')[0]}.txt"
        header = f"# TensorRT {version} Python API names, from {wheel.name} by scripts/tensorrt_api_names.py\n"
        path.write_text(header + "".join(n + "\n" for n in sorted(names)))
        print(f"{path}: {len(names)} names from {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
