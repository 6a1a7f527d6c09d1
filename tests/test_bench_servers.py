"""The bench's two WSGI servers (``bench/run.py --server``, started by ``bench/run_services.py``):
each command starts a server of the asked kind that answers on its port, with the worker
processes the load generator counts CPU for (children of the process it is given), and stops
with its workers."""

from __future__ import annotations

import importlib
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # as scripts/bench.sh runs it
services: Any = importlib.import_module("run_services")  # bench/ is not type-checked (pyproject.toml)
report: Any = importlib.import_module("run_report")

APP = '''
def application(environ, start_response):
    body = environ["SERVER_SOFTWARE"].encode() if "SERVER_SOFTWARE" in environ else b"served"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_each_server_serves_with_its_workers_as_children(server: str, tmp_path: Path) -> None:
    kind = services.Server(server)
    (tmp_path / "tinyapp.py").write_text(APP)
    bin_dir = Path(sys.executable).parent
    env = {"PATH": str(bin_dir), "PYTHONPATH": str(tmp_path)}
    proc, port = services.start_server(bin_dir, "tinyapp:application", env, tmp_path, 2, f"test-{server}", "/", kind)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
            assert reply.status == 200 and reply.read()
        deadline = time.monotonic() + 10
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers  # what bench/loadgen_stats.py sums the server's CPU over
    finally:
        services.stop_server(proc)
    assert proc.poll() is not None
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
                   for pid in workers)


def test_the_report_names_the_server() -> None:
    assert report._server_line({"server": "granian", "workers": 4}).startswith("granian 4 WSGI workers")
    assert report._server_line({"workers": 4}) == "gunicorn 4 sync workers each"  # results from before the option
