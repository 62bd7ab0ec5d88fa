# The digest section of make bench (tools/bench_digest.py): one round on every MicroPython build
# the tests run on, its table, and its errors.

import re
import subprocess
import sys
from pathlib import Path

import pytest
import runtimes

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "bench_digest.py"

_ROW = re.compile(
    r"^\| (md5|sha256) \| (i386|x64) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$"
)


def test_one_round_reports_every_digest_on_every_build():
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--rounds", "1"], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    rows = [
        _ROW.match(line)
        for line in proc.stdout.splitlines()
        if line.startswith("| md5") or line.startswith("| sha256")
    ]
    assert all(rows), proc.stdout
    seen = {(m.group(1), m.group(2)) for m in rows}
    assert seen == {(a, r) for a in ("md5", "sha256") for r in runtimes.selected()}
    for m in rows:
        native, viper, plain = int(m.group(3)), int(m.group(4)), int(m.group(5))
        # viper is a few times slower than C and many times faster than plain Python; the
        # bounds are loose because each figure is timed on its own on a shared machine
        assert native > viper > 5 * plain > 0, m.group(0)
        assert float(m.group(6)) == pytest.approx(viper / native, abs=0.002)


def test_bad_rounds_is_a_one_line_error():
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--rounds", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "bench_digest: --rounds must be 1 or more"
