"""The whole OTA lifecycle on the virtual nRF52840 board, for every cloud.

The real agent (firmware/, as .mpy in the board's storage partition, run from /flash as on the
zephyr port), the emulated MCUboot between boots and the cloud emulators of netfixtures: an
MCUboot image (imgtool) is downloaded into image-1, checked, a test swap requested, and the new
image confirms itself after the swap. The stories of the ESP32 lifecycle: update and confirm; a
new image that dies before confirming (MCUboot reverts it, the failure is reported); a power cut
in the middle of the download, and at each write of the swap request and of the confirmation
(found with the board's write log); no update (idle); make demo on the board.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import vboard_writes
from test_lifecycle import CLOUDS, SECTIONS, Board, _done, _failure_reports, _kinds

ROOT = Path(__file__).resolve().parent.parent
BOARD = "nrf52840"

# boot.py of a 2.0.0 image that is broken: it dies before the agent can confirm it. After the
# swap the new image runs from image-0, so it knows itself by the version in its own header
# (ih_ver's major at offset 20).
BROKEN_NEW_IMAGE = """\
import zephyr

_header = bytearray(32)
zephyr.FlashArea(*zephyr.FlashArea.areas["image-0"]).readblocks(0, _header)
if _header[20] == 2:
    raise RuntimeError("the new firmware is broken")
"""


def _nrf_board(tmp_path, cloud, puts=()):
    return Board(tmp_path, cloud, puts, board=BOARD)


def _primary(board):
    """image-0 as inspect sees it: version, hash verdict, trailer."""
    return board.inspect()["slots"][0]


def _boots(events):
    return [(e["version"], e["state"]) for e in events if e["event"] == "boot"]


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_nrf_update_swap_confirm_and_report(tmp_path, cloud):
    board = _nrf_board(tmp_path, cloud)
    board.publish()
    events = board.boot()
    kinds = _kinds(events)
    order = ["offer", "start", "verified", "activated", "reset", "swap", "confirmed", "reported",
             "idle"]  # fmt: skip
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions), kinds
    assert _boots(events) == [("1.0.0", "confirmed"), ("2.0.0", "unconfirmed")]
    primary = _primary(board)
    assert primary["version"] == "2.0.0" and primary["sha256_ok"]
    assert primary["trailer"]["image_ok"] == "set"  # the agent confirmed it in MCUboot's trailer
    assert _done(cloud, board.state())
    for value in SECTIONS[cloud].values():
        if len(value) > 12:  # the keys, secrets and tokens (not the short ids)
            assert value not in board.output
    # the next power-on: no swap, no revert, nothing reported twice, idle
    again = board.boot()
    assert _boots(again) == [("2.0.0", "confirmed")]
    assert "reported" not in _kinds(again) and _kinds(again)[-1] == "idle"


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_nrf_new_image_that_dies_before_confirming_is_reverted_and_reported(tmp_path, cloud):
    broken = tmp_path / "boot.py"
    broken.write_text(BROKEN_NEW_IMAGE)
    board = _nrf_board(tmp_path, cloud, puts=[(broken, "/boot.py")])
    board.publish()
    events = board.boot()
    kinds = _kinds(events)
    assert kinds.index("swap") < kinds.index("crash") < kinds.index("revert"), kinds
    assert kinds.index("revert") < kinds.index("rolled_back"), kinds
    assert _primary(board)["version"] == "1.0.0"
    failures = _failure_reports(cloud, board.log())
    expected = {"sagoo": ["-1"], "aliyun": ["-1"], "mxchip": []}  # MXCHIP has no failure report
    assert failures == expected.get(cloud, [206]), failures
    assert "confirmed" not in kinds and kinds[-1] == "idle"
    # reported once: the next boot neither reverts again nor reports again
    before = len(board.log())
    again = board.boot()
    assert "revert" not in _kinds(again) and "rolled_back" not in _kinds(again)
    assert _failure_reports(cloud, board.log()[before:]) == []


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_nrf_power_cut_during_the_download_resumes_after_the_reboot(tmp_path, cloud):
    board = _nrf_board(tmp_path, cloud)
    board.publish()
    # 150 kB = 37 blocks of 4 KiB, an erase and a program each: cut in the middle of the image
    events = board.boot("--power-cut-after-writes", "40")
    kinds = _kinds(events)
    assert "power_cut" in kinds, kinds
    resumed = [e for e in events if e["event"] == "resume"]
    assert resumed and resumed[0]["offset"] > 0, kinds
    assert kinds.index("power_cut") < kinds.index("resume") < kinds.index("activated")
    assert "confirmed" in kinds and _primary(board)["version"] == "2.0.0"
    assert _done(cloud, board.state())


def test_the_demo_tells_the_same_story_on_an_nrf_board():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--board", BOARD, "--cloud", "sagoo",
         "--size", "100000"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    story = ["the cloud offers 2.0.0", "image verified: 2.0.0", "MCUboot swaps the slots (test",
             "2.0.0 confirmed", "outcome reported to the cloud: succeeded",
             "demo: the board runs 2.0.0 and the cloud knows it"]  # fmt: skip
    positions = [out.find(line) for line in story]
    assert -1 not in positions and positions == sorted(positions), out


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_nrf_no_update_goes_idle(tmp_path, cloud):
    board = _nrf_board(tmp_path, cloud)
    board.publish(image=False)
    events = board.boot()
    assert _kinds(events)[-2:] == ["no_update", "idle"]
    assert _boots(events) == [("1.0.0", "confirmed")]
    expected = ["auth", "inform", "auth", "check"] if cloud == "aliyun" else ["check"]
    assert [r["endpoint"] for r in board.log()] == expected
    primary = _primary(board)
    assert primary["version"] == "1.0.0" and board.inspect()["slots"][1]["blank"]


def _trailer_writes(board, boot, label, log):
    """The write numbers K of boot `boot` that went to the last page of `label` (MCUboot's
    trailer there), from the board's write log of a run without a cut."""
    profile = json.loads((board.dir / "board.json").read_text())
    size = {p[0]: int(p[2], 16) for p in profile["partitions"]}[label]
    return [
        w["write"]
        for w in vboard_writes.read(log)
        if w["boot"] == boot and w["label"] == label and w["offset"] >= size - 4096
    ]


def test_nrf_power_cut_in_the_swap_request_or_the_confirmation_ends_consistently(tmp_path):
    # Count a clean run's writes (the write log), then cut each write of the swap request (the
    # end of image-1, boot 1) and of the confirmation (image_ok at the end of image-0, boot 2),
    # each on a fresh board.
    clean = _nrf_board(tmp_path / "clean", "onenet")
    clean.publish()
    log = tmp_path / "writes.log"
    clean.boot("--trace-writes", str(log))
    cuts = [(1, k) for k in _trailer_writes(clean, 1, "image-1", log)]
    cuts += [(2, k) for k in _trailer_writes(clean, 2, "image-0", log)]
    assert len([c for c in cuts if c[0] == 1]) >= 2 and [c for c in cuts if c[0] == 2], cuts
    for boot, k in cuts:
        board = _nrf_board(tmp_path / ("cut-%d-%d" % (boot, k)), "onenet")
        board.publish()
        events = board.boot("--power-cut-after-writes", str(k), "--power-cut-boot", str(boot))
        kinds = _kinds(events)
        cut = [e for e in events if e["event"] == "power_cut"]
        assert cut and cut[0]["label"] == ("image-1" if boot == 1 else "image-0"), (k, cut)
        assert kinds[-1] == "idle", (boot, k, kinds)
        primary = _primary(board)
        assert primary["sha256_ok"], (boot, k, primary)
        if boot == 1:
            # a torn request is not a request: the check after the reboot writes it again
            assert primary["version"] == "2.0.0" and "confirmed" in kinds, (k, kinds)
            assert primary["trailer"]["image_ok"] == "set"
            assert _done("onenet", board.state())
        else:
            # a torn image_ok either took (2.0.0 stays, success reported) or did not (MCUboot
            # swaps back, the failure is reported): never both, never neither
            reports = [r["json"] for r in board.log() if r["endpoint"] == "progress"]
            steps = [r.get("step") for r in reports if isinstance(r, dict)]
            if primary["version"] == "2.0.0":
                assert _done("onenet", board.state()) and 206 not in steps, (k, steps)
            else:
                assert "revert" in kinds and 206 in steps, (k, kinds, steps)
