"""What the bench scripts share: `bench/http.py` (server start-up, the request mix, the correctness check)
loaded as a module, and this folder kept off `sys.path`, where `http.py` would hide the standard library's
`http`. Import it before anything else: `import benchkit` then `# isort: split`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]


def load_http_bench():
    """`bench/http.py` as the module `charter_bench_http` (loaded once)."""
    if "charter_bench_http" in sys.modules:
        return sys.modules["charter_bench_http"]
    spec = importlib.util.spec_from_file_location("charter_bench_http", HERE / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
