# make bench's device side (tools/bench_device.py) on its lean esp32 stand-in
# (tools/bench_rt/esp32.py), against nginx, on every MicroPython build the bench runs on: the
# loops it times move every byte into ota_1 of the board's real partition table, so its figures
# are about a download that happened.

import hashlib
import json
import os
import subprocess
from pathlib import Path

import espidf
import pytest
import runtimes

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60


def _bench(tmp_path, runtime, mode, *flags):
    image = espidf.make_app_image("2.0.0", size=200_000)
    name = "bench-rig-%s.bin" % os.urandom(4).hex()
    (Path(os.environ["FOTA_TEST_FILES"]) / name).write_bytes(image)
    profile = json.loads((ROOT / "boards/esp32/board.json").read_text())
    flash = tmp_path / "flash.bin"
    espidf.make_board_flash(str(flash), profile, "1.0.0")
    args = [os.environ["FOTA_TEST_NGINX"] + "/" + name, str(len(image))]
    args += [hashlib.md5(image).hexdigest(), str(flash), "4096", str(tmp_path)]
    path = [str(ROOT / p) for p in ("tools/bench_rt", "tools", "firmware")]
    frozen = runtimes.shim_path(runtime)  # what that build's firmware would freeze (ssl)
    path += [frozen] if frozen else []
    proc = subprocess.run(
        [*runtimes.command(runtime), "-m", "bench_device", mode, *args, *flags],
        env=dict(os.environ, MICROPYPATH=":".join(path)), capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = [line.split() for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1, proc.stdout
    board = espidf.Flash(str(flash))
    slots = {p[0]: p for p in espidf.partitions(board)}
    board.close()
    with open(flash, "rb") as f:
        f.seek(slots["ota_1"][3])
        written = f.read(len(image))
    return image, int(result[0][2]), written


@pytest.mark.parametrize("runtime", runtimes.selected())
def test_the_engine_fills_ota_1_on_the_lean_stand_in(tmp_path, runtime):
    image, moved, written = _bench(tmp_path, runtime, "engine", "noboot")
    assert moved == len(image)
    assert written == image


@pytest.mark.parametrize("runtime", runtimes.selected())
def test_the_minimal_loop_fills_ota_1_on_the_lean_stand_in(tmp_path, runtime):
    image, moved, written = _bench(tmp_path, runtime, "minimal")
    assert moved == len(image)
    assert written == image
