"""make demo: one whole OTA on the virtual board against a local cloud emulator, narrated.

usage: python tools/demo.py [--cloud onenet|onenet-fuse|sagoo|aliyun|mxchip] [--board BOARD]
                            [--dir DIR] [--size BYTES] [--json] [--fault MODE [--fault-times K]]

1. builds a 2.0.0 image for the board (an ESP32 app image, or an MCUboot image made with imgtool
   for an nRF board) and starts the cloud's emulator (tools/emulator.py) with it as the pending
   update;
2. creates a virtual board (tools/vboard.py create, board "esp32" unless --board says another)
   running 1.0.0, with the agent and an /ota.json pointing at the emulator;
3. boots it (tools/vboard.py boot) and tells what the board does: check, offer, progress,
   verify, activate, reboot, confirm, report, idle;
4. shows the requests as the cloud saw them and the board's slots (tools/vboard.py inspect).
Exit status 0 when the board ends on 2.0.0, confirmed, and the cloud knows it; 1 otherwise.
--json prints the raw event lines instead of the story. --fault puts tools/faultproxy.py
between the board and the emulator and injects MODE (e.g. reset-at=random, drip=5, status=503)
into the first K (default 2) answers that carry the image; the board must still end on 2.0.0.
board_config, control and cloud_agrees are also make bench's (tools/bench.py runs the same
cycle to find its smallest heap).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS / "devices"))

import cli  # noqa: E402
import emu  # noqa: E402
import espidf  # noqa: E402
import faultproxy  # noqa: E402
import mcuimage  # noqa: E402

import boards  # noqa: E402

OLD, NEW = "1.0.0", "2.0.0"
BOOT_TIMEOUT_S = 120
STARVED_BACKOFFS = 2  # out of memory: the demo stops after this many backoffs
# The board is the esp32 profile: 64 KB of heap, what MicroPython starts with on an ESP32
# without PSRAM, for the agent and the application.
# the paths of each emulator's image downloads, the answers --fault spoils
DOWNLOADS = {
    "onenet": r"/ota/south/download/[^/]+$",
    "onenet-fuse": r"/download$",
    "sagoo": r"^/sagoo-files/",
    "aliyun": r"^/ota-files/",
    "mxchip": r"^/files/",
}


def board_config(cloud, info):
    """The board's /ota.json for the emulator at info["url"] with its default credentials."""
    cfg = dict(info["config"])  # the emulator's own: its URL and credentials (plain http)
    cfg.update(server=info["url"], poll_s=3600, progress_step=20)  # url: the proxy's, with --fault
    return cfg


def _say(text):
    print(text, flush=True)


def _story(event):
    """One readable line for a board event, or None for the uninteresting ones."""
    kind = event.get("event")
    boot = event.get("boot")
    if kind == "boot" and "slot" in event:
        return "[boot %s] the bootloader starts %s: version %s (%s)" % (
            boot, event.get("slot"), event.get("version"), event.get("state"))  # fmt: skip
    if kind == "swap":  # an nRF board's MCUboot
        return "[boot %s] MCUboot swaps the slots (%s request): %s replaces %s" % (
            boot, event.get("type"), event.get("to"), event.get("from"))  # fmt: skip
    texts = {
        "no_update": "the cloud has no update for %(version)s",
        "offer": "the cloud offers %(version)s (%(size_text)s)",
        "start": "download of %(version)s starts",
        "progress": "  downloading: %(percent)s%%",
        "retry": "  connection lost, retry %(attempt)s in %(delay_ms)s ms",
        "resume": "  resuming from byte %(offset)s",
        "verified": "image verified: %(version)s, %(size)s bytes, digest and header OK",
        "activated": "the new image boots at the next reset (the bootloader was told)",
        "reset": "reset (%(why)s)",
        "health": "health check after the update (network, cloud): %(verdict)s",
        "confirmed": "%(version)s confirmed: the bootloader will not roll it back",
        "rolled_back": "the bootloader rolled back to %(version)s",
        "reported": "outcome reported to the cloud: %(result)s",
        "report_failed": "report to the cloud failed: %(error)s",
        "failed": "update failed (%(reason)s): %(error)s",
        "idle": "idle: next check in %(sleep_s)s s",
        "rollback": "the bootloader rolled back from %(from)s to %(to)s",
        "revert": "MCUboot swaps back from %(from)s to %(to)s (%(reason)s)",
        "swap_failed": "MCUboot refuses the %(type)s request: %(reason)s",
        "crash": "the firmware crashed (exit %(exit)s)",
        "error": "error in the %(stage)s (%(reason)s): %(error)s",
        "backoff": "backs off %(sleep_s)s s before trying again (failure %(failures)s in a row)",
        "timeout": "the board did not go idle in time",
    }
    text = texts.get(kind)
    if text is None:
        return None
    event = dict(event)
    event["why"] = event.get("reason") or event.get("cause")
    event["verdict"] = "passed" if event.get("ok") else "failed"
    size = event.get("size")
    event["size_text"] = "%s bytes" % size if size else "no size given: probed before the download"
    try:
        line = text % event
    except (KeyError, TypeError):
        line = kind
    return "[boot %s] %s" % (boot, line) if boot is not None else line


def _cloud_view(log):
    lines = []
    for r in log:
        detail = ""
        body = r.get("json")
        if r.get("range"):
            detail = "Range: " + r["range"]
        elif isinstance(body, dict):
            detail = json.dumps(body, sort_keys=True)
        lines.append("  %-4s %-60s %s" % (r["method"], r["path"][:60], detail))
    return lines


def control(server, name):
    """GET the emulator's /_emu/NAME (its request log or state)."""
    with urllib.request.urlopen(server.control + "/" + name, timeout=10) as resp:
        return json.load(resp)


def _run(cmd, timeout):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", default="onenet", choices=emu.CLOUDS)
    parser.add_argument(
        "--board", default="esp32", choices=boards.names(), help="the board profile (esp32)"
    )
    parser.add_argument("--dir", help="keep the board here (default: a temporary directory)")
    parser.add_argument("--size", type=int, default=300_000, help="size of the 2.0.0 image")
    parser.add_argument("--json", action="store_true", help="print the raw board events")
    parser.add_argument(
        "--heap",
        help="the app's heap on the board, e.g. 48k to watch the agent run out of memory and "
        "back off (default: the board profile's heap)",
    )
    parser.add_argument("--fault", help="a tools/faultproxy.py mode for the image's answers")
    parser.add_argument("--fault-times", type=int, default=2, help="answers spoiled (default 2)")
    args = parser.parse_args(argv)

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="fota-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    image = work / ("fw-%s.bin" % NEW)
    if boards.load(args.board).get("slot") == "mcuboot":
        mcuimage.build(image, NEW, args.size)
    else:
        image.write_bytes(espidf.make_app_image(NEW, size=args.size, project="fota-demo"))
    board = work / "board"
    python = sys.executable
    vboard = str(TOOLS / "vboard.py")

    server = emu.start(args.cloud, image=str(image), version=NEW)
    proxy = None
    try:
        info = server.info()
        _say("== %s emulator at %s serves %s as the pending update" % (args.cloud, server.url, NEW))
        if args.fault:
            proxy = faultproxy.start(server.url, args.fault, args.fault_times,
                                     only=DOWNLOADS[args.cloud])  # fmt: skip
            info = dict(info, url=proxy.url)  # the board talks to the proxy
            _say("== fault proxy at %s: %s, %d times" % (proxy.url, args.fault, args.fault_times))
        cfg_path = work / "ota.json"
        cfg_path.write_text(json.dumps(board_config(args.cloud, info), indent=2))
        made = _run([python, vboard, "create", str(board), "--board", args.board, "--version", OLD,
                     "--config", str(cfg_path), "--force"], 120)  # fmt: skip
        if made.returncode != 0:
            _say("demo: vboard create failed:\n" + made.stderr)
            return 1
        _say("== virtual board created in %s, running %s" % (board, OLD))
        boot = [python, vboard, "boot", str(board), "--timeout", str(BOOT_TIMEOUT_S)]
        if args.heap:
            boot += ["--heap", args.heap]
        proc = subprocess.Popen(boot, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        starved = 0  # backoffs after running out of memory
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {}
            if args.json:
                _say(line.rstrip())
            else:
                text = _story(event)
                if text:
                    _say(text)
            if event.get("event") == "error" and event.get("reason") == "no_memory":
                starved += 1
            if event.get("event") == "backoff" and starved >= STARVED_BACKOFFS:
                # the agent waits 30 s, 60 s ... and tries again: seen enough, stop the board
                proc.terminate()
        proc.wait(timeout=BOOT_TIMEOUT_S + 30)
        _say("== the requests as the cloud saw them")
        log = control(server, "log")
        for line in _cloud_view(log):
            _say(line)
        state = control(server, "state")
        if proxy is not None:
            _say("== the faults the proxy injected")
            for record in proxy.log:
                if record["fault"]:
                    _say("  %s %s: %s" % (record["path"].split("?")[0], record["range"] or "",
                                          record["fault"]))  # fmt: skip
        inspected = _run([python, vboard, "inspect", str(board)], 60)
        slots = json.loads(inspected.stdout) if inspected.returncode == 0 else {}
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
    booted = slots.get("booted")
    versions = {s.get("label"): s.get("version") for s in slots.get("slots", [])}
    _say("== the board boots %s, which holds %s" % (booted, versions.get(booted)))
    ok = proc.returncode == 0 and versions.get(booted) == NEW and cloud_agrees(args.cloud, state)
    if ok:
        _say("demo: the board runs %s and the cloud knows it" % NEW)
    elif starved:
        _say("demo: the agent ran out of memory with --heap %s and backed off; the board keeps "
             "running %s (make bench measures the heap each cloud's cycle needs)"
             % (args.heap or "the profile's", versions.get(booted)))  # fmt: skip
    else:
        _say("demo: FAILED")
    return 0 if ok else 1


def cloud_agrees(cloud, state):
    if cloud in ("onenet", "onenet-fuse"):
        return (state.get("task") or {}).get("state") == "completed"
    if cloud == "sagoo":
        return (state.get("batch") or {}).get("state") == "completed"
    if cloud == "aliyun":
        return (state.get("job") or {}).get("state") == "succeeded"
    return (state.get("device") or {}).get("wifi_version") == NEW  # mxchip


if __name__ == "__main__":
    sys.exit(cli.run("demo", main))
