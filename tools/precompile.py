"""Byte-compile the modules that asr imports (its own, torch's, ...), once, at set-up.

tools/setup.sh installs packages without byte-compiling them (all of torch would take 35 s of 114), so Python
compiles each module when it is first imported and saves the result in __pycache__. Where
PYTHONDONTWRITEBYTECODE is set, as on the machine this project is measured on, it saves nothing, and every
process compiles again: 3.5 s of the 6.4 s that importing asr.train and asr.cli takes there (measured). The main
job and the test suite start dozens of processes. Compiling just the imported files takes about 6 s.
Usage: .venv/bin/python tools/precompile.py
"""

from __future__ import annotations

import importlib
import pkgutil
import py_compile
import sys
import time

# imported only inside functions, for plots, beam search, BPE and the tests
LAZY = ("matplotlib.pyplot", "librosa", "librosa.display", "pytest", "flashlight.lib.text.decoder", "kenlm",
        "sentencepiece", "torchaudio.models.decoder")


def main() -> int:
    start = time.perf_counter()
    import asr

    names = [m.name for m in pkgutil.walk_packages(asr.__path__, "asr.")] + list(LAZY)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional package not installed: nothing of it to compile
            pass
    files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None)) and
                    f.endswith(".py")})
    done = 0
    for f in files:
        try:
            py_compile.compile(f, doraise=True)
            done += 1
        except (OSError, py_compile.PyCompileError):  # a module without a real file, or a read-only one
            pass
    print(f"precompile: {done} imported modules byte-compiled in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
