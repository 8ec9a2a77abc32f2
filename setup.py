"""Build of routeq: the core compiled with mypyc where a C compiler is present.

The modules listed in ``schemas/native.py`` (``SOURCES``) become C extensions
beside their ``.py`` files; a digest of each compiled source is written to
``schemas/native-sources.txt``, which ``schemas/native.py`` checks before it
lets the extensions load. ``ROUTEQ_PURE=1`` at install time, or a failed
compilation (no compiler), installs routeq without extensions: the same
source runs as plain Python. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def sources() -> tuple[str, ...]:
    """``SOURCES`` of schemas/native.py, read without importing the package."""
    tree = ast.parse((ROOT / "schemas" / "native.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SOURCES":
            return tuple(ast.literal_eval(node.value))  # type: ignore[arg-type]
    raise RuntimeError("schemas/native.py has no SOURCES")


class BuildNative(build_ext):
    """build_ext that never fails the install, and records what it compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, or a compiler error: pure Python
            print(f"routeq: the core was not compiled ({exc}); it runs as pure Python",
                  file=sys.stderr)
            return
        if not self.extensions:
            return
        base = ROOT if self.inplace else Path(self.build_lib)
        manifest = base / "schemas" / "native-sources.txt"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("".join(f"{s} {d}\n" for s, d in DIGESTS.items()))

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:
            raise RuntimeError(f"compiling {getattr(ext, 'name', ext)}: {exc}") from exc


#: each compiled source's digest, taken before compiling it (an edit made
#: during the build must not pass for compiled)
DIGESTS: dict[str, str] = {}


def extensions() -> list[object]:
    if os.environ.get("ROUTEQ_PURE", "") not in ("", "0"):
        return []
    DIGESTS.update((s, hashlib.sha256((ROOT / s).read_bytes()).hexdigest()) for s in sources())
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("routeq: mypyc is not available; the core runs as pure Python", file=sys.stderr)
        return []
    try:
        return list(mypycify(list(sources()), opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc refused the code: pure Python
        print(f"routeq: mypyc could not compile the core ({exc}); it runs as pure Python",
              file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildNative})
