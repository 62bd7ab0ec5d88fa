"""pytest set-up: import paths, and the second run of dual-runtime modules on MicroPython.

A test module that sets `RUN_ON_MICROPYTHON = True` at top level runs three times: on CPython
like any module, and then each of its `test_*` functions again on each build of the MicroPython
unix port (tools/runtimes.py: `x64`, the 64-bit build from PyPI, and `i386`, Debian's 32-bit
build, whose objects are the size of an ESP32's), in a process of its own
(`micropython -X heapsize=...` bounded by a timeout), reported as `test_name[micropython-x64]` and
`test_name[micropython-i386]`. `MICROPYTHON_HEAP = "256k"` sets the heap for that module.
Those tests take no arguments and use `dual.py` instead of pytest's fixtures. The MicroPython
items run after all CPython ones.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT / "firmware", ROOT / "tools" / "devices", HERE, ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import runtimes  # noqa: E402 - tools/, on the path only now

# Local servers (nginx, a fault-injecting HTTP server) for the network tests, started once per
# run and announced to both runtimes through environment variables: see netfixtures.py. The
# emulator tests' servers, one per cloud and module: emufixtures.py.
pytest_plugins = ("netfixtures", "emufixtures")

RUNNER = HERE / "mpy_run.py"
MARK = "@@fota-test"
DEFAULT_TIMEOUT_S = 60


def _dual_settings(path: Path):
    """(heap or None, timeout, test names) when the module asks for a MicroPython run, else None."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    values = {}
    tests = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                values[target.id] = node.value.value
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tests.append(node.name)
    if values.get("RUN_ON_MICROPYTHON") is not True:
        return None
    return (
        values.get("MICROPYTHON_HEAP"),
        values.get("MICROPYTHON_TIMEOUT", DEFAULT_TIMEOUT_S),
        tests,
    )


class MicroPythonFailure(Exception):
    pass


class MicroPythonFile(pytest.File):
    def collect(self):
        settings = _dual_settings(self.path)
        if settings is None:
            return
        heap, timeout, tests = settings
        for runtime in runtimes.selected():
            for name in tests:
                yield MicroPythonItem.from_parent(
                    self,
                    name=f"{name}[micropython-{runtime}]",
                    test=name,
                    heap=heap,
                    timeout=timeout,
                    runtime=runtime,
                )


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test, heap, timeout, runtime, **kwargs):
        super().__init__(**kwargs)
        self.runtime = runtime
        self.test = test
        self.heap = heap
        self.timeout_s = timeout

    def runtest(self):
        try:
            cmd = runtimes.command(self.runtime)
        except runtimes.RuntimeMissing as exc:
            raise MicroPythonFailure(str(exc)) from None
        if self.heap:
            cmd += ["-X", f"heapsize={self.heap}"]
        cmd += [str(RUNNER), self.path.stem, self.test]
        try:
            proc = subprocess.run(
                cmd, cwd=HERE, capture_output=True, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if exc.stdout else ""
            raise MicroPythonFailure(f"timed out after {self.timeout_s} s\n{out}") from None
        output = proc.stdout + proc.stderr
        if f"{MARK} {self.test} PASS" in proc.stdout and proc.returncode == 0:
            return
        raise MicroPythonFailure(f"exit status {proc.returncode}\n{output}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"on the MicroPython unix port ({self.runtime}): {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, self.name


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py" and file_path.name.startswith("test_"):
        if _dual_settings(file_path) is not None:
            return MicroPythonFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: isinstance(item, MicroPythonItem))
