"""The virtual board (tools/vboard.py) end to end: create, boot, inspect, write-flash, fsimage.

Every test drives the real command line in a subprocess with a timeout. The firmware in these
tests is a small main.py per test (put on the board with --put), not the agent, so that the board
itself is what is tested: bootloader states, resets, crashes, power cuts, heap, events.
"""

import json
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import espidf
import pytest

import boards

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
VBOARD = TOOLS / "vboard.py"
FSIMAGE = TOOLS / "fsimage.py"
TIMEOUT_S = 60
sys.path.insert(0, str(TOOLS))

import fsimage  # noqa: E402
from vboardctl import serving  # noqa: E402

EMIT = """\
import json


def emit(kind, **info):
    info["event"] = kind
    print(json.dumps(info))

"""

# An update through esp32.Partition as the agent does it: /app2.bin into the next slot, set_boot,
# reset. The new image confirms itself when /mode.json says so; otherwise it resets unconfirmed.
LIFECYCLE = (
    EMIT
    + """\
import esp32
import machine


def load(name):
    try:
        with open(name) as f:
            return json.load(f)
    except OSError:
        return {}


state = load("/t.json")
running = esp32.Partition(esp32.Partition.RUNNING)
label = running.info()[4]
emit("running", label=label, cause=machine.reset_cause())
if not state.get("updated"):
    part = running.get_next_update()
    buf = bytearray(4096)
    block = 0
    with open("/app2.bin", "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            for i in range(n, 4096):
                buf[i] = 0xFF
            part.writeblocks(block, buf)
            block += 1
    part.set_boot()
    with open("/t.json", "w") as f:
        json.dump({"updated": True}, f)
    emit("activated", slot=part.info()[4])
    machine.reset()
elif label != "ota_0" and load("/mode.json").get("confirm"):
    esp32.Partition.mark_app_valid_cancel_rollback()
    emit("confirmed")
    emit("idle")
elif label != "ota_0":
    machine.reset()
else:
    emit("idle", label=label)
"""
)


@pytest.fixture
def make_board(tmp_path):
    """make_board(main_source, files={dst: bytes}, board="esp32") -> board dir (created)."""
    counter = [0]

    def make(main, files=None, board="esp32", version="1.0.0", extra=()):
        counter[0] += 1
        src = tmp_path / ("src%d" % counter[0])
        src.mkdir()
        (src / "main.py").write_text(main)
        (src / "boot.py").write_text("# test boot.py\n")
        (src / "cfg.json").write_text('{"cloud": "onenet"}')
        puts = [
            "--put",
            "%s:/main.py" % (src / "main.py"),
            "--put",
            "%s:/boot.py" % (src / "boot.py"),
        ]
        for i, (dst, data) in enumerate(sorted((files or {}).items())):
            (src / ("f%d" % i)).write_bytes(data)
            puts += ["--put", "%s:%s" % (src / ("f%d" % i), dst)]
        target = tmp_path / ("board%d" % counter[0])
        proc = vboard(
            "create",
            target,
            "--board",
            board,
            "--version",
            version,
            "--config",
            src / "cfg.json",
            *puts,
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        return target

    return make


def vboard(*args, timeout=TIMEOUT_S):
    return subprocess.run(
        [sys.executable, str(VBOARD), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def boot(board, *args, timeout=TIMEOUT_S, status=0):
    """Events of `vboard boot`; asserts its exit status (0: the agent went idle, or --boots ran
    out; 3: the board halted or timed out) and one JSON object per line."""
    proc = vboard("boot", board, *args, timeout=timeout)
    assert proc.returncode == status, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def inspect(board):
    proc = vboard("inspect", board)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def kinds(events):
    return [e["event"] for e in events]


def slot(info, label):
    return next(s for s in info["slots"] if s["label"] == label)


def test_create_then_inspect_shows_ota0_booted_with_the_version_and_the_files(make_board):
    board = make_board(EMIT + 'emit("idle")\n', files={"/data/x.bin": b"x" * 5000}, version="1.2.3")
    info = inspect(board)
    assert (info["board"], info["chip"], info["booted"]) == ("esp32", "esp32", "ota_0")
    assert info["next_boot"] == {"slot": "ota_0", "rollback": False}
    ota0 = slot(info, "ota_0")
    assert ota0["valid"] and ota0["version"] == "1.2.3" and len(ota0["sha256"]) == 64
    assert slot(info, "ota_1")["blank"] and not slot(info, "ota_1")["valid"]
    assert info["otadata"][0] == {
        "sector": 0,
        "seq": 1,
        "state": "VALID",
        "crc_ok": True,
        "slot": "ota_0",
    }
    assert info["otadata"][1]["seq"] is None
    files = {f["path"]: f["size"] for f in info["vfs"]["files"]}
    assert files["/data/x.bin"] == 5000 and "/ota.json" in files and "/main.py" in files
    assert "/lib/fota/core/download.mpy" in files  # the agent ships compiled
    board_json = json.loads(fsimage.read_file(_vfs(board), "/board.json"))
    assert board_json["name"] == "esp32" and board_json["heap"] == "64k"
    # The flash is ESP-IDF's: the partition table and otadata read back with the shim's parser.
    flash = espidf.Flash(str(board / "flash.bin"))
    try:
        part, rolled = espidf.bootloader(flash, 0, write=False)
        assert (part[0], rolled) == ("ota_0", False)
    finally:
        flash.close()


def _vfs(board):
    profile = json.loads((board / "board.json").read_text())
    row = next(r for r in profile["partitions"] if r[0] == "vfs")
    data = (board / "flash.bin").read_bytes()
    return data[int(row[3], 16) : int(row[3], 16) + int(row[4], 16)]


def test_boot_streams_the_firmware_events_and_stops_at_idle(make_board):
    main = EMIT + (
        "import gc, time\n"
        'print("plain output")\n'
        'print(json.dumps({"event": "custom", "n": 1, "boot": 99}))\n'
        "gc.collect()\n"
        'emit("heap", free=gc.mem_free())\n'
        'emit("idle", poll_s=3600)\n'
        "time.sleep(60)\n"  # the agent's wait: vboard must stop the board here
    )
    events = boot(make_board(main), "--heap", "48k", "--timeout", "30")
    assert kinds(events) == ["boot", "log", "custom", "heap", "idle"]
    assert events[0] == {
        "event": "boot",
        "boot": 1,
        "slot": "ota_0",
        "version": "1.0.0",
        "state": "VALID",
        "reset_cause": "power_on",
        "heap": 48 * 1024,
    }
    assert events[1] == {"event": "log", "boot": 1, "line": "plain output"}
    assert events[2] == {"event": "custom", "n": 1, "boot": 99}  # passed through unchanged
    assert 40 * 1024 < events[3]["free"] <= 48 * 1024  # the app gets the budget, not more
    assert events[4] == {"event": "idle", "poll_s": 3600, "boot": 1}


def test_ready_event_gives_the_baseline_of_the_apps_heap_figures(make_board):
    # make bench's idle heap: what the app reports as gc.mem_alloc(), minus the ready event's
    main = EMIT + 'import gc\ngc.collect()\nemit("idle", heap=gc.mem_alloc())\n'
    events = boot(make_board(main), "--heap", "48k", "--ready-event")
    assert kinds(events) == ["boot", "ready", "idle"]
    ready, idle = events[1], events[2]
    assert ready["boot"] == 1 and abs(ready["free"] - 48 * 1024) < 1024  # pinned at --heap
    assert 0 < idle["heap"] - ready["alloc"] < 8 * 1024  # boot.py and main.py's own objects


def test_update_confirmed_by_the_new_image_becomes_valid(make_board):
    app2 = espidf.make_app_image("2.0.0", size=20000)
    board = make_board(LIFECYCLE, files={"/app2.bin": app2, "/mode.json": b'{"confirm": true}'})
    events = boot(board)
    assert kinds(events) == [
        "boot",
        "running",
        "activated",
        "reset",
        "boot",
        "running",
        "confirmed",
        "idle",
    ]
    assert events[3] == {"event": "reset", "boot": 1, "cause": "soft"}
    assert events[4]["slot"] == "ota_1" and events[4]["version"] == "2.0.0"
    assert events[4]["state"] == "PENDING_VERIFY" and events[4]["reset_cause"] == "soft"
    assert events[5]["cause"] == 5  # machine.SOFT_RESET, as an ESP32 reports after reset()
    info = inspect(board)
    assert info["booted"] == "ota_1" and info["next_boot"] == {"slot": "ota_1", "rollback": False}
    assert [e["state"] for e in info["otadata"]] == ["VALID", "VALID"]
    assert slot(info, "ota_1")["version"] == "2.0.0" and slot(info, "ota_1")["valid"]


def test_an_unconfirmed_image_is_rolled_back_at_the_next_reset(make_board):
    app2 = espidf.make_app_image("2.0.0", size=20000)
    board = make_board(LIFECYCLE, files={"/app2.bin": app2})
    events = boot(board)
    assert kinds(events) == [
        "boot",
        "running",
        "activated",
        "reset",
        "boot",
        "running",
        "reset",
        "rollback",
        "boot",
        "running",
        "idle",
    ]
    assert events[7] == {
        "event": "rollback",
        "boot": 3,
        "from": "ota_1",
        "to": "ota_0",
        "reason": "unconfirmed",
    }
    assert (events[8]["slot"], events[8]["version"], events[8]["state"]) == (
        "ota_0",
        "1.0.0",
        "VALID",
    )
    info = inspect(board)
    assert info["booted"] == "ota_0" and info["next_boot"]["slot"] == "ota_0"
    assert [e["state"] for e in info["otadata"]] == ["VALID", "ABORTED"]
    assert slot(info, "ota_1")["valid"]  # the image is fine; it was never confirmed


def test_a_crash_reboots_the_board_like_a_watchdog(make_board):
    main = EMIT + (
        "import machine\n"
        "if machine.reset_cause() == machine.WDT_RESET:\n"
        '    emit("idle")\n'
        "else:\n"
        '    print("about to fail")\n'
        '    raise ValueError("boom")\n'
    )
    events = boot(make_board(main))
    assert kinds(events) == ["boot", "log", "crash", "reset", "boot", "idle"]
    crash = events[2]
    assert crash["exit"] == 1 and crash["stderr"][-1] == "ValueError: boom"
    assert any(line.startswith('  File "main.py", line') for line in crash["stderr"])
    assert not any("vboard_runner" in line for line in crash["stderr"])
    assert events[3]["cause"] == "watchdog" and events[4]["reset_cause"] == "watchdog"


def test_a_power_cut_tears_the_flash_write_and_the_board_boots_again(make_board):
    # writeblocks = erase + program: operations 1-2 write block 0, 3-4 block 1; cut at 4.
    main = EMIT + (
        "import esp32\n"
        'part = esp32.Partition("ota_1")\n'
        'emit("writing")\n'
        "for block in range(3):\n"
        "    part.writeblocks(block, bytes([block + 1]) * 4096)\n"
        'emit("idle")\n'
    )
    board = make_board(main)
    events = boot(board, "--boots", "1", "--power-cut-after-writes", "4")
    assert kinds(events) == ["boot", "writing", "power_cut", "reset", "stop"]
    # the event names the operation the cut hit: the program of block 1 of ota_1
    assert events[2] == {"event": "power_cut", "boot": 1, "after_writes": 4, "op": "program",
                         "label": "ota_1", "offset": 4096, "size": 4096}  # fmt: skip
    assert events[3]["cause"] == "power_on"
    flash = (board / "flash.bin").read_bytes()
    ota1 = boards.partition(boards.load("esp32"), "ota_1")[0]
    assert flash[ota1 : ota1 + 4096] == b"\x01" * 4096
    assert flash[ota1 + 4096 : ota1 + 6144] == b"\x02" * 2048  # half the program landed
    assert flash[ota1 + 6144 : ota1 + 12288] == b"\xff" * 6144
    events = boot(board)  # the board on the desk, powered up again
    assert kinds(events) == ["boot", "writing", "idle"]
    assert events[0]["reset_cause"] == "power_on"


def test_boots_limit_resets_deep_sleep_halt_and_timeout(make_board):
    main = EMIT + (
        "import machine\n"
        'emit("cause", cause=machine.reset_cause())\n'
        "if machine.reset_cause() != machine.DEEPSLEEP_RESET:\n"
        "    machine.deepsleep(1000)\n"
        "machine.reset()\n"
    )
    events = boot(make_board(main), "--boots", "3")
    assert kinds(events) == ["boot", "cause", "reset"] * 3 + ["stop"]
    assert [e["cause"] for e in events if e["event"] == "reset"] == [
        "deepsleep",
        "soft",
        "deepsleep",
    ]
    assert [e["cause"] for e in events if e["event"] == "cause"] == [1, 4, 5]
    assert events[-1] == {"event": "stop", "boot": 3, "reason": "boots"}
    # main.py returned (the agent halted) or the time ran out: not idle, exit status 3
    assert kinds(boot(make_board('print("done")\n'), status=3)) == ["boot", "log", "halt"]
    events = boot(make_board("while True:\n    pass\n"), "--timeout", "1", status=3)
    assert kinds(events) == ["boot", "timeout"]


def test_a_board_without_a_file_system_is_formatted_like_inisetup(make_board, tmp_path):
    board = make_board("")
    vfs, size = boards.partition(boards.load("esp32"), "vfs")
    blank = tmp_path / "blank.bin"
    blank.write_bytes(b"\xff" * size)
    assert vboard("write-flash", board, hex(vfs), blank).returncode == 0
    assert inspect(board)["vfs"]["files"] is None
    events = boot(board, status=3)
    assert kinds(events) == ["boot", "log", "halt"]
    assert events[1]["stream"] == "vboard" and "formatting" in events[1]["line"]
    assert [f["path"] for f in inspect(board)["vfs"]["files"]] == ["/boot.py"]


def test_no_bootable_slot_is_a_broken_board(make_board, tmp_path):
    board = make_board("")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 8192)
    assert vboard("write-flash", board, "0x10000", junk).returncode == 0
    proc = vboard("boot", board)
    assert proc.returncode == 2
    assert json.loads(proc.stdout.splitlines()[-1])["event"] == "error"
    assert "no valid app image" in proc.stderr
    info = inspect(board)  # inspect still describes the broken board
    assert not slot(info, "ota_0")["valid"] and info["next_boot"]["slot"] is None


def test_fsimage_is_flashable_at_the_vfs_offset_and_boots(make_board, tmp_path):
    main = tmp_path / "main.py"
    main.write_text(EMIT + 'emit("idle", config=open("/ota.json").read())\n')
    cfg = tmp_path / "cfg.json"
    cfg_text = json.dumps({"cloud": "sagoo", "server": "http://10.0.0.2", "allow_http": True,
                           "sagoo": {"device_key": "d", "ak": "a", "sk": "s"}})  # fmt: skip
    cfg.write_text(cfg_text)
    image = tmp_path / "fs.bin"
    proc = subprocess.run(
        [
            sys.executable,
            str(FSIMAGE),
            "--board",
            "esp32",
            "--config",
            str(cfg),
            "--put",
            "%s:/main.py" % main,
            "-o",
            str(image),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    assert "write-flash 0x310000" in proc.stdout
    data = image.read_bytes()
    assert len(data) == 0xF0000
    files = dict(fsimage.listing(data))  # littlefs-python reads it back
    assert files["/ota.json"] == len(cfg.read_bytes()) and "/lib/fota/ota.mpy" in files
    board = make_board("", board="esp32")  # an esp32 board, its vfs replaced by the image
    assert vboard("write-flash", board, "0x310000", image).returncode == 0
    events = boot(board)
    assert events[-1]["event"] == "idle" and events[-1]["config"] == cfg_text


def test_the_example_config_passes_the_agents_validation():
    from fota.app import config

    cfg = config.validate(json.loads((TOOLS / "ota.example.json").read_text()))
    assert cfg["cloud"] == "onenet"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a command is needed"),
        (
            ["create", "{dir}/b", "--board", "esp99", "--version", "1", "--config", "{cfg}"],
            "unknown board 'esp99'",
        ),
        (
            ["create", "{dir}/b", "--version", "1", "--config", "{dir}/list.json"],
            "must be a JSON object",
        ),
        (
            ["create", "{dir}/b", "--version", "1", "--config", "{dir}/nope.json"],
            "cannot read config",
        ),
        (
            ["create", "{dir}/b", "--version", "1", "--config", "{cfg}", "--put", "{dir}/no.py:/x"],
            "no such file",
        ),
        (["create", "{dir}/b", "--config", "{cfg}"], "needs --version"),
        (["create", "{dir}/b", "--version", "1"], "--config"),
        (["inspect", "{dir}"], "holds no virtual board"),
        (["boot", "{dir}/nothing"], "holds no virtual board"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_command_lines_fail_with_one_message_and_write_nothing(tmp_path, argv, message):
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "list.json").write_text("[1, 2]")
    argv = [a.format(dir=tmp_path, cfg=tmp_path / "cfg.json") for a in argv]
    proc = vboard(*argv)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("vboard: ")
    assert message in proc.stderr
    assert not (tmp_path / "b").exists()


def test_create_refuses_an_existing_board_without_force(make_board, tmp_path):
    board = make_board("")
    before = (board / "flash.bin").read_bytes()
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    proc = vboard("create", board, "--version", "9.9.9", "--config", cfg)
    assert proc.returncode == 1 and "already holds a board" in proc.stderr
    assert (board / "flash.bin").read_bytes() == before
    proc = vboard("create", board, "--version", "9.9.9", "--config", cfg, "--force")
    assert proc.returncode == 0, proc.stderr
    assert slot(inspect(board), "ota_0")["version"] == "9.9.9"


def test_mpremote_works_against_the_board_through_the_repl_bridge(make_board, tmp_path):
    board = make_board(EMIT + 'import time\nemit("idle")\ntime.sleep(60)\n')
    local = tmp_path / "hello.txt"
    local.write_text("hello board\n")
    script = tmp_path / "script.py"
    script.write_text(
        "import esp32\nprint('slot', esp32.Partition(esp32.Partition.RUNNING).info()[4])\n"
    )
    with serving(board, wait_s=TIMEOUT_S) as (proc, first):
        assert first["event"] == "repl" and first["url"] == "socket://127.0.0.1:%d" % first["port"]
        mpremote = [str(Path(sys.executable).with_name("mpremote")), "connect", first["url"]]
        commands = [
            "exec",
            "print(6 * 7)",
            "+",
            "fs",
            "cp",
            str(local),
            ":hello.txt",
            "+",
            "fs",
            "ls",
            ":",
            "+",
            "fs",
            "cat",
            ":hello.txt",
            "+",
            "run",
            str(script),
            "+",
            "exec",
            "x = 1",
            "+",
            "soft-reset",
            "+",
            "exec",
            "print('x' in globals())",
        ]
        done = subprocess.run(
            mpremote + commands, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "42"
        assert any(line.split() == ["12", "hello.txt"] for line in lines)  # fs ls
        assert "hello board" in lines and "slot ota_0" in lines
        assert lines[-1] == "False"  # the soft reset cleared the globals
    files = {f["path"]: f["size"] for f in inspect(board)["vfs"]["files"]}
    assert files["/hello.txt"] == 12  # written to the board's flash


def test_create_flashes_a_given_app_image_and_refuses_a_bad_one(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text("{}")
    app = tmp_path / "app.bin"
    app.write_bytes(espidf.make_app_image("3.0.1", size=12000))
    proc = vboard("create", tmp_path / "b", "--board", "esp32", "--image", app, "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    ota0 = slot(inspect(tmp_path / "b"), "ota_0")
    assert (ota0["version"], ota0["image_size"]) == ("3.0.1", 12000)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(espidf.make_app_image("3.0.1", chip="esp32c3"))
    proc = vboard("create", tmp_path / "c", "--image", bad, "--config", cfg)
    assert proc.returncode == 1 and "not esp32" in proc.stderr
    assert not (tmp_path / "c").exists()


def test_the_repl_bridge_survives_clients_that_vanish_mid_output(make_board):
    board = make_board(EMIT + 'import time\nemit("idle")\ntime.sleep(60)\n')
    with serving(board, wait_s=TIMEOUT_S) as (proc, first):
        # with no client connected the flood becomes events on vboard's stdout: keep reading it
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
        # a client starts a flood of output and drops the connection (RST) while it runs,
        # as a USB cable pulled out or a killed terminal would; several times over
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", first["port"]), timeout=TIMEOUT_S) as c:
                c.sendall(b"\x03\x03\r\nfor i in range(5000): print('flood', i)\r\n")
                c.settimeout(TIMEOUT_S)
                seen = b""
                while b"flood 1" not in seen:  # the loop runs: drop the client now
                    data = c.recv(65536)
                    assert data, "the bridge closed the connection"
                    seen = seen[-16:] + data
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        mpremote = [str(Path(sys.executable).with_name("mpremote")), "connect", first["url"]]
        done = subprocess.run(
            mpremote + ["exec", "print(6 * 7)"], capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == "42"
        assert proc.poll() is None, proc.stderr.read()
