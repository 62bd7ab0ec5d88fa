"""tools/deploy.py: the agent copied with mpremote onto a running virtual board through its REPL
bridge (as onto a real board on a serial port), and the esptool command lines of `flash`."""

import json
import selectors
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VBOARD = ROOT / "tools" / "vboard.py"
DEPLOY = ROOT / "tools" / "deploy.py"
TIMEOUT_S = 120

IDLE_MAIN = 'import json, time\nprint(json.dumps({"event": "idle"}))\ntime.sleep(60)\n'


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)  # fmt: skip


def _config(tmp_path, **changes):
    cfg = json.loads((ROOT / "tools" / "ota.example.json").read_text())
    cfg.update(changes)
    path = tmp_path / "ota.json"
    path.write_text(json.dumps(cfg))
    return path


def test_deploy_copies_agent_config_and_profile_through_mpremote(tmp_path):
    main = tmp_path / "main.py"
    main.write_text(IDLE_MAIN)
    board = tmp_path / "board"
    made = _run(VBOARD, "create", board, "--board", "esp32", "--version", "1.0.0",
                "--config", _config(tmp_path), "--put", "%s:/main.py" % main)  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen([sys.executable, str(VBOARD), "boot", str(board), "--repl", "0",
                             "--timeout", "100"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(TIMEOUT_S), "no repl event"
        first = json.loads(proc.stdout.readline())
        url = first["url"]
        # connect once the firmware is up and idle: before that a Ctrl-C from mpremote would
        # interrupt the board's own start-up (slow on a clean clone, compiling everything)
        while True:
            assert sel.select(TIMEOUT_S), "the board never went idle"
            line = proc.stdout.readline()
            assert line, "vboard ended before the board was idle"
            if line.startswith("{") and json.loads(line).get("event") == "idle":
                break
        mpremote = str(Path(sys.executable).with_name("mpremote"))
        # remove part of the agent and the config: deploy must bring them back
        wipe = "import os\nos.remove('/lib/fota/ota.mpy')\nos.remove('/ota.json')"
        wiped = subprocess.run([mpremote, "connect", url, "exec", wipe],
                               capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
        assert wiped.returncode == 0, wiped.stderr
        cfg = _config(tmp_path, poll_s=77)
        ca = tmp_path / "ca.der"
        ca.write_bytes(b"\x30\x82fake-der")
        done = _run(DEPLOY, "deploy", url, "--board", "esp32", "--config", cfg,
                    "--put", "%s:/certs/ca.der" % ca)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "files on socket://" in done.stdout
        check = subprocess.run(
            [mpremote, "connect", url, "exec",
             "import json, os\nprint(json.load(open('/ota.json'))['poll_s'])\n"
             "print(sorted(os.listdir('/lib/fota')))\nprint(os.stat('/certs/ca.der')[6])"],
            capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        lines = check.stdout.split("\n")
        assert lines[0].strip() == "77"
        assert "'ota.mpy'" in lines[1]  # deleted above, brought back by deploy
        assert lines[2].strip() == str(len(b"\x30\x82fake-der"))
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT_S)


def test_deploy_refuses_a_bad_config_before_touching_the_board(tmp_path):
    cfg = _config(tmp_path, poll=60)
    done = _run(DEPLOY, "deploy", "/dev/nonexistent", "--config", cfg)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("ota.json: unknown key poll")
    assert done.stderr.startswith("deploy: ")


def test_flash_erases_then_writes_at_the_chips_bootloader_offset(tmp_path):
    fw = tmp_path / "ESP32_GENERIC-OTA.bin"
    fw.write_bytes(b"\xe9" + b"\x00" * 100)
    esp32 = _run(DEPLOY, "flash", "/dev/ttyUSB0", "--firmware", fw, "--dry-run").stdout
    lines = esp32.splitlines()
    assert lines[0].endswith("--chip esp32 --port /dev/ttyUSB0 erase-flash")
    assert lines[1].endswith("write-flash -z 0x1000 %s" % fw)
    s3 = _run(DEPLOY, "flash", "/dev/ttyACM0", "--firmware", fw, "--board", "esp32s3",
              "--dry-run").stdout  # fmt: skip
    assert s3.splitlines()[1].endswith("write-flash -z 0x0 %s" % fw)
    missing = _run(DEPLOY, "flash", "/dev/ttyUSB0", "--firmware", tmp_path / "none.bin")
    assert missing.returncode == 1 and "no such firmware file" in missing.stderr
