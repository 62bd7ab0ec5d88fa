"""The firmware type check catches misspelled device APIs (pyright against the ESP32 stubs)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYRIGHT = Path(sys.executable).with_name("pyright")

_GOOD = """\
import esp32


def switch() -> None:
    slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    slot.set_boot()
"""


def _check(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """Type-check `source` as a firmware module with the project's own configuration."""
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "slotswitch.py").write_text(source)
    config = json.loads((ROOT / "pyrightconfig.json").read_text())
    for key in ("typeshedPath", "stubPath"):
        config[key] = str(ROOT / config[key])
    config["extraPaths"] = [str(ROOT / p) for p in config["extraPaths"]]
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    return subprocess.run(
        [str(PYRIGHT), "--project", str(tmp_path / "pyrightconfig.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_correct_device_api_passes(tmp_path):
    proc = _check(tmp_path, _GOOD)
    assert proc.returncode == 0, proc.stdout
    assert "0 errors" in proc.stdout


def test_misspelled_partition_method_fails(tmp_path):
    proc = _check(tmp_path, _GOOD.replace("slot.set_boot()", "slot.set_bootx()"))
    assert proc.returncode != 0
    assert 'Cannot access attribute "set_bootx" for class "Partition"' in proc.stdout


def test_cpython_only_api_fails(tmp_path):
    # The stubs model MicroPython's reduced standard library: this exists only on CPython.
    proc = _check(tmp_path, _GOOD + "\nimport time\nstamp = time.monotonic_ns()\n")
    assert proc.returncode != 0
    assert "monotonic_ns" in proc.stdout


def test_stub_override_is_generated(tmp_path):
    # tools/stubs.py widens Partition(id) to int | str; without it RUNNING would be an error.
    stubs = ROOT / ".venv" / "mpy-stubs"
    out = tmp_path / "typings"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "stubs.py"), str(stubs), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "esp32.pyi").read_text()
    assert "def __init__(self, id: int | str, block_size: int = 4096, /)" in text
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "esp32.pyi").write_text(text)  # already widened: the tool must notice
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "stubs.py"), str(broken), str(tmp_path / "t2")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Partition.__init__ changed" in proc.stderr
