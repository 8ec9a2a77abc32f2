"""Build of routeq: the core compiled with mypyc where a C compiler is present.

The modules listed in ``schemas/native.py`` (``SOURCES``) become C extensions
beside their ``.py`` files; a digest of each compiled source is written to
``schemas/native-sources.txt``, which ``schemas/native.py`` checks before it
lets the extensions load. ``ROUTEQ_PURE=1`` at install time, or a failed
compilation (no compiler), installs routeq without extensions: the same
source runs as plain Python. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def load_native() -> ModuleType:
    """schemas/native.py alone (it imports nothing of routeq): its module list,
    digests and ROUTEQ_PURE test, without the package's import-time choice."""
    spec = importlib.util.spec_from_file_location("routeq_native",
                                                  ROOT / "schemas" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


native = load_native()


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
        manifest = base / native.MANIFEST.relative_to(ROOT)
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
    if native.pure_requested(os.environ):
        return []
    DIGESTS.update((s, native.digest(ROOT / s)) for s in native.SOURCES)
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("routeq: mypyc is not available; the core runs as pure Python", file=sys.stderr)
        return []
    try:
        return list(mypycify(list(native.SOURCES), opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc refused the code: pure Python
        print(f"routeq: mypyc could not compile the core ({exc}); it runs as pure Python",
              file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildNative})
