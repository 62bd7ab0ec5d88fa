"""tools/deploy.py: the agent copied with mpremote onto a running virtual board through its REPL
bridge (as onto a real board on a serial port), and the esptool command lines of `flash`; what
deploy and tools/fsimage.py refuse before anything is written."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from vboardctl import serving

ROOT = Path(__file__).resolve().parent.parent
VBOARD = ROOT / "tools" / "vboard.py"
DEPLOY = ROOT / "tools" / "deploy.py"
FSIMAGE = ROOT / "tools" / "fsimage.py"
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
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
    with _repl_board(tmp_path, "esp32") as url:
        # remove part of the agent and the config: deploy must bring them back
        wipe = "import os\nos.remove('/lib/fota/ota.mpy')\nos.remove('/ota.json')"
        wiped = subprocess.run([MPREMOTE, "connect", url, "exec", wipe],
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
            [MPREMOTE, "connect", url, "exec",
             "import json, os\nprint(json.load(open('/ota.json'))['poll_s'])\n"
             "print(sorted(os.listdir('/lib/fota')))\nprint(os.stat('/certs/ca.der')[6])"],
            capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        lines = check.stdout.split("\n")
        assert lines[0].strip() == "77"
        assert "'ota.mpy'" in lines[1]  # deleted above, brought back by deploy
        assert lines[2].strip() == str(len(b"\x30\x82fake-der"))


def test_deploy_refuses_a_bad_config_before_touching_the_board(tmp_path):
    cfg = _config(tmp_path, poll=60)
    done = _run(DEPLOY, "deploy", "/dev/nonexistent", "--board", "esp32", "--config", cfg)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("ota.json: unknown key poll")
    assert done.stderr.startswith("deploy: ")


def _one_line_error(done, tool, text):
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(tool + ": "), done.stderr
    assert text in done.stderr
    assert "flash it" not in done.stdout


def test_deploy_and_fsimage_take_no_placeholder_board_or_config(tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "fs.bin"
    no = "/dev/nonexistent"
    _one_line_error(_run(DEPLOY, "deploy", no, "--config", cfg), "deploy", "no board profile")
    _one_line_error(_run(DEPLOY, "deploy", no, "--board", "esp32"), "deploy", "no config")
    _one_line_error(_run(DEPLOY, "deploy", "--board", "esp32"), "deploy", "no port")
    _one_line_error(_run(FSIMAGE, "--config", cfg, "-o", out), "fsimage", "no board profile")
    _one_line_error(_run(FSIMAGE, "--board", "esp32", "-o", out), "fsimage", "no config")
    assert not out.exists()
    # and make passes no default either
    done = subprocess.run(["make", "-s", "--no-print-directory", "fsimage", "BOARD=esp32"],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode != 0 and "fsimage: no config: give --config FILE" in done.stderr


PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("change", "ca", "message"),
    [
        ({"poll": 60}, None, "ota.json: unknown key poll"),
        ({"onenet": {"product_id": "1", "device_id": "2", "key": "a2V5", "method": "sha512"}},
         b"0\x82", "ota.json: onenet.method must be one of md5, sha1, sha256"),
        ({"ca": None}, None, "ota.json: server is https: set ca to its CA certificate (DER)"),
        ({}, None, "ota.json: ca: /certs/ca.der is not in the image: add it with --put"),
        ({}, PEM, "is not a DER certificate (PEM?)"),
        ({}, b"", "is not a DER certificate"),
    ],
)  # fmt: skip
def test_fsimage_refuses_what_the_agent_would_stop_on_and_writes_nothing(
    tmp_path, change, ca, message
):
    cfg = json.loads((ROOT / "tools" / "ota.example.json").read_text())
    for key, value in change.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    path = tmp_path / "ota.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "fs.bin"
    args = [FSIMAGE, "--board", "esp32", "--config", path, "-o", out]
    if ca is not None:
        (tmp_path / "ca.der").write_bytes(ca)
        args += ["--put", "%s:/certs/ca.der" % (tmp_path / "ca.der")]
    _one_line_error(_run(*args), "fsimage", message)
    assert not out.exists()


def test_fsimage_prints_an_esptool_command_that_can_be_pasted(tmp_path):
    ca = tmp_path / "ca.der"
    ca.write_bytes(b"0\x82\x01\x0a")
    out = tmp_path / "fs.bin"
    done = subprocess.run(
        [sys.executable, str(FSIMAGE), "--board", "esp32", "--config", str(_config(tmp_path)),
         "--put", "%s:/certs/ca.der" % ca, "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1]
    assert line.startswith("flash it: ")
    command = line[len("flash it: ") :].split()
    assert (ROOT / command[0]).resolve() == Path(sys.executable).with_name("esptool").resolve()
    assert command[1:5] == ["--chip", "esp32", "write-flash", "0x310000"]


@contextlib.contextmanager
def _repl_board(tmp_path, board_name):
    """A virtual board of `board_name` serving its console; yields its mpremote URL once idle."""
    main = tmp_path / "main.py"
    main.write_text(IDLE_MAIN)
    board = tmp_path / "board"
    made = _run(VBOARD, "create", board, "--board", board_name, "--version", "1.0.0",
                "--config", _config(tmp_path), "--put", "%s:/main.py" % main)  # fmt: skip
    assert made.returncode == 0, made.stderr
    # connect once the firmware is up and idle: before that a Ctrl-C from mpremote would
    # interrupt the board's own start-up (slow on a clean clone, compiling everything)
    with serving(board, timeout_s=100, wait_s=TIMEOUT_S) as (_, first):
        yield first["url"]


def _board_file(url, path):
    done = subprocess.run([MPREMOTE, "connect", url, "exec", "print(open(%r).read())" % path],
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_deploy_keeps_another_boards_profile_and_checks_the_boards_ca(tmp_path):
    with _repl_board(tmp_path, "esp32c3") as url:
        cfg = _config(tmp_path, poll_s=77)
        # the board is an esp32c3: deploying the esp32 profile onto it is refused
        done = _run(DEPLOY, "deploy", url, "--board", "esp32", "--config", cfg)
        _one_line_error(done, "deploy", "the board holds the esp32c3 profile, not esp32: give "
                        "--replace-board (make: REPLACE_BOARD=1)")  # fmt: skip
        # the config names /certs/ca.der, which neither a --put nor the board holds
        done = _run(DEPLOY, "deploy", url, "--board", "esp32c3", "--config", cfg)
        _one_line_error(done, "deploy", "ota.json: ca: cannot read /certs/ca.der on the board")
        assert json.loads(_board_file(url, "/ota.json"))["poll_s"] == 3600  # nothing copied
        # a PEM file given as the CA is refused before anything is copied
        pem = tmp_path / "ca.pem"
        pem.write_bytes(PEM)
        done = _run(DEPLOY, "deploy", url, "--board", "esp32c3", "--config", cfg,
                    "--put", "%s:/certs/ca.der" % pem)  # fmt: skip
        _one_line_error(done, "deploy", "is not a DER certificate (PEM?)")
        ca = tmp_path / "ca.der"
        ca.write_bytes(b"0\x82\x01\x0a")
        done = _run(DEPLOY, "deploy", url, "--board", "esp32", "--config", cfg,
                    "--put", "%s:/certs/ca.der" % ca, "--replace-board")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "deploy: replacing the esp32c3 profile with the esp32 profile" in done.stdout
        assert json.loads(_board_file(url, "/board.json"))["name"] == "esp32"
        assert json.loads(_board_file(url, "/ota.json"))["poll_s"] == 77
        # now that the CA is on the board, a deploy without it passes the board's CA check
        done = _run(DEPLOY, "deploy", url, "--board", "esp32", "--config", cfg)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "replacing" not in done.stdout


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
    _one_line_error(_run(DEPLOY, "flash", "/dev/ttyUSB0"), "deploy", "no firmware")


def test_check_board_says_what_it_replaces_and_refuses_another_board_or_no_profile():
    sys.path.insert(0, str(ROOT / "tools"))
    import deploy

    import boards

    esp32 = boards.load("esp32")
    same = boards.dumps(esp32).encode()
    assert deploy.check_board(esp32, None, False) is None  # no /board.json yet
    assert deploy.check_board(esp32, same, False) is None  # the same profile: nothing to say
    older = dict(json.loads(same), chunk=1024)
    note = deploy.check_board(esp32, json.dumps(older).encode(), False)
    assert note == "the board's /board.json (esp32) is updated to this checkout's"
    for current, what in ((boards.dumps(boards.load("esp32s3")).encode(), "the esp32s3 profile"),
                          (b"{not json", "a /board.json that is not a board profile"),
                          (b"[1]", "a /board.json that is not a board profile")):  # fmt: skip
        with pytest.raises(deploy.DeployError, match="holds %s, not esp32" % what):
            deploy.check_board(esp32, current, False)
        assert deploy.check_board(esp32, current, True) == (
            "replacing %s with the esp32 profile (--replace-board)" % what
        )


def test_deploy_puts_the_agent_under_flash_on_an_nrf_board_and_flash_refuses_it(tmp_path):
    # Zephyr's _boot.py mounts the storage partition at /flash: the files go there
    data = json.loads((ROOT / "tools" / "ota.example.json").read_text())
    data.pop("ca", None)
    data.pop("wifi", None)  # on Zephyr the application brings the network up
    data.update(allow_http=True, server="http://192.0.2.1:8080")
    cfg = tmp_path / "ota.json"
    cfg.write_text(json.dumps(data))
    done = _run(DEPLOY, "deploy", "/dev/ttyACM0", "--board", "nrf52840", "--config", cfg,
                "--dry-run")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "'/flash/board.json'" in done.stdout  # the probe reads the board's profile there
    targets = [a for a in done.stdout.split() if a.startswith(":/")]
    assert ":/flash/ota.json" in targets and ":/flash/board.json" in targets
    assert ":/flash/lib/fota/app/agent.mpy" in targets
    assert all(t.startswith(":/flash/") for t in targets), targets
    # the adapter's own refusal, as at the board's start: no wifi section on Zephyr
    data["wifi"] = {"ssid": "lab", "password": "secret-wifi"}
    cfg.write_text(json.dumps(data))
    wifi = _run(DEPLOY, "deploy", "/dev/ttyACM0", "--board", "nrf52840", "--config", cfg,
                "--dry-run")  # fmt: skip
    _one_line_error(wifi, "deploy", "wifi: a Zephyr board's network is the application's")
    fw = tmp_path / "zephyr.signed.bin"
    fw.write_bytes(b"\x3d\xb8\xf3\x96" + bytes(100))
    refused = _run(DEPLOY, "flash", "/dev/ttyACM0", "--board", "nrf52840", "--firmware", fw)
    _one_line_error(refused, "deploy", "flash writes an ESP32 build with esptool")
