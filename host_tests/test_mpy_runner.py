"""The MicroPython runner reports each test by name and never hides a failure."""

import subprocess
from pathlib import Path

import pytest
import runtimes

HERE = Path(__file__).resolve().parent

_MODULE = """\
RUN_ON_MICROPYTHON = True


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert 1 + 1 == 3, "arithmetic is broken"


def test_raises():
    raise OSError(5)
"""


def _run(tmp_path, *args, heap=None, runtime="x64"):
    (tmp_path / "test_sample_mod.py").write_text(_MODULE)
    cmd = runtimes.command(runtime)
    if heap:
        cmd += ["-X", f"heapsize={heap}"]
    # The runner puts its own folder on sys.path; run a copy of it beside the sample module.
    runner = tmp_path / "mpy_run.py"
    runner.write_text((HERE / "mpy_run.py").read_text())
    return subprocess.run(
        [*cmd, str(runner), "test_sample_mod", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("runtime", runtimes.selected())
def test_runner_reports_each_test_by_name(tmp_path, runtime):
    proc = _run(tmp_path, "test_passes", "test_fails", "test_raises", runtime=runtime)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@fota-test")]
    assert lines == [
        "@@fota-test test_passes PASS",
        "@@fota-test test_fails FAIL",
        "@@fota-test test_raises FAIL",
    ]
    assert "arithmetic is broken" in proc.stdout


def test_runner_passes_only_when_all_pass(tmp_path):
    proc = _run(tmp_path, "test_passes", heap="64k")
    assert proc.returncode == 0
    assert "@@fota-test test_passes PASS" in proc.stdout


# The word size each build is chosen for: i386 has 31-bit small ints, as an ESP32.
_MAXSIZE = {"x64": 2**63 - 1, "i386": 2**31 - 1}


@pytest.mark.parametrize("runtime", runtimes.selected())
def test_runner_runs_on_micropython(tmp_path, runtime):
    (tmp_path / "test_impl.py").write_text(
        "import sys\n\ndef test_impl():\n"
        "    assert sys.implementation.name == 'micropython'\n"
        "    assert sys.maxsize == %d\n" % _MAXSIZE[runtime]
    )
    runner = tmp_path / "mpy_run.py"
    runner.write_text((HERE / "mpy_run.py").read_text())
    proc = subprocess.run(
        [*runtimes.command(runtime), str(runner), "test_impl", "test_impl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout
