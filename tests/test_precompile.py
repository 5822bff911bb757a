"""tools/precompile.py: the modules asr imports get valid byte code, so processes need not compile them."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import asr.train

ROOT = Path(__file__).resolve().parent.parent


def test_precompile_writes_valid_byte_code_for_imported_modules(tmp_path):
    sources = [Path(asr.train.__file__), Path(importlib.util.find_spec("torch.nn.modules.rnn").origin)]
    caches = [Path(importlib.util.cache_from_source(str(s))) for s in sources]
    for c in caches:
        c.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "precompile.py")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "imported modules byte-compiled" in out.stderr, out.stderr
    for src, c in zip(sources, caches):
        assert c.is_file(), c
        # a .pyc Python accepts: its header records the source's mtime and size (PEP 552, timestamp-based)
        header = c.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[8:12], "little") == int(src.stat().st_mtime) & 0xFFFFFFFF
        assert int.from_bytes(header[12:16], "little") == src.stat().st_size & 0xFFFFFFFF
