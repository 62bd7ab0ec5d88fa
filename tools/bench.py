"""make bench: the agent against the limits of this machine, on both MicroPython builds in one run.

usage: python tools/bench.py [--rounds N] [--chunk BYTES] [--out FILE] [--cycle CLOUD,...|none]
                             [--quick]

Runs on the two builds of the unix port (tools/runtimes.py): i386, 32-bit with an ESP32's object
and collector block sizes, the reference for every memory figure, and x64, 64-bit. In order:

1. Throughput. Serves a 1.5 MB ESP32 image from nginx on loopback and times, interleaved round
   by round and runtime by runtime (the machine is shared and noisy: the ratios matter most):
     (a) bare     a socket readinto loop that discards the data: the I/O limit;
     (b) minimal  readinto + MD5 update + writeblocks into a file-backed slot: the work limit;
     (c) engine   fota end to end for an offer with an MD5: Range requests, keep-alive, journal,
                  slot writer, digest and image checks, up to the call of set_boot (ESP-IDF's
                  code on a device, which checks the image's appended SHA-256 in hardware);
     (c+) engine  the same with image_sha=True: the agent hashes every byte with SHA-256 too;
     (b+) minimal with a SHA-256 of every byte too: the work limit of (c+).
   Per runtime: the medians, c/b and c+/b+ (the median of each round's ratio), the bytes (c)
   allocates per chunk (collector off) and how many of its bytes it moved with the heap locked
   (its steady state allocates nothing).
2. Heap for (c), per runtime: the smallest `-X heapsize` (1 KB steps, collector on) at which (c)
   completes up to set_boot with the agent loaded from .mpy; the same for the harness alone (the
   device side of this script, tools/bench_device.py, and a lean file-backed stand-in for
   esp32.Partition, tools/bench_rt/esp32.py: C code on a device) and for the agent's imports
   alone (its code); (b) in the same harness; (c) on the test suite's faithful esp32 shim.
3. Heap per module, on i386: every module of firmware/fota (found by walking it), imported from
   .mpy in a fresh process after the modules it imports, so that the gc.mem_alloc() delta is its
   own; sorted by size, their sum, all of them in one process, and the qstr pools then.
4. The full update cycle on the virtual board, per cloud (--cycle; i386, and OneNET on x64 and on
   the virtual nRF52840 with a 300 KB MCUboot image too):
   that cloud's emulator (tools/emu) offers 2.0.0 to a virtual board (tools/vboard.py) running
   1.0.0 with the agent alone in main.py (agent.main()), as `make demo` does; the cycle passes
   when the board ends on 2.0.0 and the cloud got the success report. The smallest
   `vboard.py boot --heap` at which it passes (a fresh board each try, bisected to 1 KB) is the
   agent's full-cycle heap; a try in which the agent runs out
   of memory and backs off counts as failed, so no try waits out the backoff. The idle heap is
   what the agent holds while idle between polls: the idle event's "heap" (gc.mem_alloc() after
   a collection) minus the heap in use when boot.py started (vboard's ready event); n/a while
   the agent's idle event carries no heap figure.
5. Digests without hashlib (tools/bench_digest.py): KB/s of fota.core.md5 and fota.core.sha256,
   viper and plain, beside hashlib's C code, on both builds.
Prints the tables and writes them to --out (tools/bench_results.md by default). --quick: three
rounds and the OneNET cycle only, a smoke run. Errors: `bench: message`, exit status 1.
"""

import argparse
import hashlib
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS / "devices"))
sys.path.insert(0, str(TOOLS))

import bench_digest  # noqa: E402
import cli  # noqa: E402
import demo  # noqa: E402
import emu  # noqa: E402
import espidf  # noqa: E402
import fsimage  # noqa: E402
import mcuimage  # noqa: E402
import nginx  # noqa: E402
import runtimes  # noqa: E402

FIRMWARE = ROOT / "firmware"
VBOARD = TOOLS / "vboard.py"
REFERENCE = "i386"  # an ESP32's 4-byte pointers and 16-byte collector blocks
RUNTIMES = (REFERENCE, "x64")  # the order of every table
LABELS = {"i386": "i386 (32-bit, reference)", "x64": "x64 (64-bit)"}
IMAGE_SIZE = 1_500_000
TIMEOUT_S = 120  # one MicroPython run
MODES = {  # name -> bench_device mode and flags, in the order each round runs them
    "bare": ("bare",),
    "minimal": ("minimal",),
    "engine": ("engine",),
    "engine-sha": ("engine", "image-sha"),
    "minimal-sha": ("minimal", "sha"),
}
QUICK_ROUNDS = 3
DEFAULT_ROUNDS = 11
# The full cycle: demo's image size; heaps bisected between these (the lower one fails on every
# build: the agent's code alone is larger), a bounded number of tries, a time limit per boot.
CYCLE_IMAGE_SIZE = 1_500_000  # the size the targets are set for
CYCLE_LO, CYCLE_HI = 8 * 1024, 256 * 1024
CYCLE_MAX_TRIES = 12
CYCLE_BOOT_TIMEOUT_S = 60
CYCLE_X64 = ("onenet",)  # the clouds whose cycle also runs on x64
# the clouds whose cycle also runs on the virtual nRF52840 (i386), with an MCUboot image of this
# size (the profile's slots take up to 320 KB)
CYCLE_NRF = ("onenet",)
NRF_BOARD, NRF_IMAGE_SIZE = "nrf52840", 300_000
KB = 1024


class BenchError(cli.ToolError):
    pass


# --- MicroPython runs ----------------------------------------------------------------------------


class Runtime:
    """One build of the unix port: its command and what its firmware would freeze."""

    def __init__(self, name):
        self.name = name
        self.argv = runtimes.command(name)
        extra = runtimes.shim_path(name)
        self.extra = [extra] if extra else []
        self.version = self.run(["-c", _VERSION], []).stdout.strip()

    def run(self, args, path, heap=None, timeout=TIMEOUT_S):
        cmd = list(self.argv)
        if heap:
            cmd += ["-X", "heapsize=%d" % heap]
        env = dict(os.environ, MICROPYPATH=":".join(str(p) for p in [*path, *self.extra]))
        return subprocess.run(cmd + args, capture_output=True, text=True, timeout=timeout, env=env)


_VERSION = "import sys; print('%d.%d.%d' % sys.implementation.version[:3])"


def _tail(proc):
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[-1] if lines else "exit status %d, no output" % proc.returncode


def _compile(work):
    """Everything the runs load, as .mpy (compiling source would count against the heap): the
    agent as the firmware folder holds it (sub-packages included), the bench script, the lean
    esp32 stand-in and the test suite's shims."""
    tool = fsimage.mpy_cross()
    if tool is None:
        raise BenchError("no mpy-cross: run `make setup`")
    mpy = work / "mpy"
    package = sorted(FIRMWARE.joinpath("fota").rglob("*.py"))
    jobs = [(src, src.relative_to(FIRMWARE), "agent") for src in package]
    jobs.append((TOOLS / "bench_device.py", Path("bench_device.py"), "agent"))
    jobs.append((TOOLS / "bench_rt" / "esp32.py", Path("esp32.py"), "lean"))
    shims = TOOLS / "devices"
    # micropython.py is CPython's stand-in for the built-in module, not a device shim
    shims = [src for src in sorted(shims.glob("*.py")) if src.stem != "micropython"]
    jobs += [(src, Path(src.name), "shim") for src in shims]
    for src, rel, folder in jobs:
        try:
            data = fsimage.compile_mpy(tool, src, fsimage.source_name(rel))
        except fsimage.FsImageError as exc:
            raise BenchError(str(exc)) from None
        out = mpy / folder / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return mpy


def _prepare(work):
    """The served image, a flash file with 1.0.0 running, its MD5 and size."""
    served = work / "www"
    served.mkdir()
    image = espidf.make_app_image("2.0.0", size=IMAGE_SIZE)
    (served / "fw.bin").write_bytes(image)
    profile = json.loads((ROOT / "boards/esp32/board.json").read_text())
    flash = work / "flash.bin"
    espidf.make_board_flash(str(flash), profile, "1.0.0")
    return served, flash, hashlib.md5(image).hexdigest(), len(image)


def _device(rt, mpy, args, heap=None, shim=False):
    """-> (bytes, us, allocated, chunks, locked, shims, agent) of one bench_device run, or None
    when it did not complete in `heap` bytes. shim: the test suite's faithful esp32 shim instead
    of the lean file-backed stand-in."""
    path = [mpy / ("shim" if shim else "lean"), mpy / "agent"]
    proc = rt.run(["-m", "bench_device", *args], path, heap)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return tuple(int(field) for field in line.split()[2:])
    if heap:
        return None
    raise BenchError("bench_device %s failed on %s: %s" % (args[0], rt.name, _tail(proc)))


def _smallest_heap(rt, mpy, args, shim=False, lo=2 * KB, hi=512 * KB):
    if _device(rt, mpy, args, hi, shim) is None:
        raise BenchError(
            "%s does not complete on %s even in %d KB of heap" % (args[0], rt.name, hi // KB)
        )
    while hi - lo > KB:
        mid = (lo + hi) // 2 // KB * KB
        if _device(rt, mpy, args, mid, shim) is None:
            lo = mid
        else:
            hi = mid
    return hi


def _throughput(rts, mpy, common, rounds):
    """{(runtime, mode): [MB/s of each round]}, every mode on every runtime in each round."""
    speeds = {}
    for _ in range(rounds):
        for mode, (name, *flags) in MODES.items():
            for rt in rts:
                got, us, *_ = _device(rt, mpy, [name, *common, *flags])
                if got != IMAGE_SIZE:
                    raise BenchError(
                        "%s moved %d of %d bytes on %s" % (mode, got, IMAGE_SIZE, rt.name)
                    )
                speeds.setdefault((rt.name, mode), []).append(got / us)  # bytes/us = MB/s
    return speeds


def _ratio(speeds, name, top, bottom):
    """The median of each round's top/bottom: the two runs of a round are a fraction of a
    second apart, so the load of a shared machine, which drifts from round to round, cancels."""
    pairs = zip(speeds[(name, top)], speeds[(name, bottom)], strict=True)
    return statistics.median([t / b for t, b in pairs])


def _heaps(rt, mpy, common):
    """The allocation count, the heap-locked check and the smallest heaps of one runtime."""
    _, _, allocated, chunks, _, shims, agent = _device(rt, mpy, ["engine", *common, "count"])
    return {
        "per_chunk": allocated / chunks,
        "locked": _device(rt, mpy, ["engine", *common, "lock"])[4],
        "resident": (agent, shims),
        # up to the call of set_boot, as timed: on a device set_boot is ESP-IDF's C code,
        # whose memory is not MicroPython's heap; the emulation's own need is shown apart
        "engine": _smallest_heap(rt, mpy, ["engine", *common, "noboot"]),
        "harness": _smallest_heap(rt, mpy, ["shims", *common, "noboot"]),
        "imports": _smallest_heap(rt, mpy, ["imports", *common]),
        "minimal": _smallest_heap(rt, mpy, ["minimal", *common]),
        "faithful": _smallest_heap(rt, mpy, ["engine", *common], shim=True),
    }


# --- heap per module -----------------------------------------------------------------------------

# Run with `-c`: what importing NAME loads besides itself (a fresh process: nothing loaded yet).
_DEPS = """import sys
before = set(sys.modules)
__import__(%r)
print("DEPS", " ".join(n for n in sys.modules if n not in before and n != %r))
"""
# The heap NAME holds once the modules it imports are in: the collector's count before and after.
_HEAP = """import gc
for n in %r:
    __import__(n)
gc.collect()
a = gc.mem_alloc()
__import__(%r)
gc.collect()
print("HEAP", gc.mem_alloc() - a)
"""
# Every module in one process, in the given order, and the qstr pools before and after.
_ALL = """import gc, micropython
micropython.qstr_info()
gc.collect()
a = gc.mem_alloc()
for n in %r:
    __import__(n)
gc.collect()
print("ALL", gc.mem_alloc() - a)
micropython.qstr_info()
"""
_QSTR = re.compile(
    r"qstr pool: n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)"
)


def _module_names():
    """Every module of firmware/fota, packages and sub-packages included, sorted."""
    names = []
    for src in FIRMWARE.joinpath("fota").rglob("*.py"):
        parts = list(src.relative_to(FIRMWARE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return sorted(names)


def _marked(rt, path, code, mark):
    """-> (the words after `mark` on the line the program printed, None) or (None, why not)."""
    proc = rt.run(["-c", code], path)
    for line in proc.stdout.splitlines():
        if line.startswith(mark + " ") or line == mark:
            return line[len(mark) :].split(), None
    return None, _tail(proc)


def _modules(rt, mpy):
    """[(module, bytes)] largest first, {module: why} of those that do not import on this
    port, all-at-once bytes, qstr pools (before, after) in bytes and the number of qstrs after."""
    path = [mpy / "agent", mpy / "shim"]  # the shims: hardware modules a module may import
    sizes = []
    broken = {}
    for name in _module_names():
        deps, why = _marked(rt, path, _DEPS % (name, name), "DEPS")
        if deps is not None:
            heap, why = _marked(rt, path, _HEAP % (deps, name), "HEAP")
            if heap is not None:
                sizes.append((name, int(heap[0])))
                continue
        broken[name] = why  # a row of its own: the other modules are still measured
    sizes.sort(key=lambda item: (-item[1], item[0]))
    proc = rt.run(["-c", _ALL % (sorted(name for name, _ in sizes),)], path)
    pools = [tuple(map(int, m.groups())) for m in _QSTR.finditer(proc.stdout)]
    together = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ALL ")]
    if len(pools) != 2 or not together:
        raise BenchError("importing every module on %s: %s" % (rt.name, _tail(proc)))
    return sizes, broken, int(together[0]), (pools[0][3], pools[1][3]), pools[1][1]


# --- the full update cycle on the virtual board --------------------------------------------------


def _post(server, name, body):
    req = urllib.request.Request(
        server.control + "/" + name,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _vboard(*args, timeout=120):
    proc = subprocess.run(
        [sys.executable, str(VBOARD), *map(str, args)], capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError("vboard %s failed: %s" % (args[0], _tail(proc)))
    return proc.stdout


def _pump(stream, lines):
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def _boot(board, heap, runtime):
    """Boot the board until it idles, halts or the agent backs off. -> (exit status or None when
    stopped at a backoff, events, the last line vboard wrote on stderr)."""
    cmd = [sys.executable, str(VBOARD), "boot", str(board), "--heap", "%dk" % (heap // KB)]
    cmd += ["--runtime", runtime, "--timeout", str(CYCLE_BOOT_TIMEOUT_S), "--ready-event"]
    events = []
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            lines = queue.Queue()
            threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
            deadline = time.monotonic() + CYCLE_BOOT_TIMEOUT_S + 30  # vboard's own limit first
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise BenchError(
                        "vboard boot gave no end in %d s" % CYCLE_BOOT_TIMEOUT_S
                    ) from None
                if line is None:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                events.append(event)
                if event.get("event") == "backoff":
                    # out of memory (or another failure): the agent would sleep 30 s and more
                    proc.terminate()  # vboard stops the firmware on its way out
                    proc.wait(timeout=30)
                    return None, events, ""
            status = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        err.seek(0)
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
    return status, events, lines[-1] if lines else ""


def _why(status, events, stderr):
    """A short reason a try failed, for messages."""
    for event in reversed(events):
        kind = event.get("event")
        if kind in ("error", "failed", "crash", "timeout", "report_failed"):
            return "%s: %s" % (kind, event.get("error") or event.get("message") or event)
    if status is None:
        return "the agent backed off"
    if status:
        return "vboard exit status %d: %s" % (status, stderr or "no message")
    return "the board did not end on %s with the cloud informed" % demo.NEW


AGENT_MAIN = "from fota.app import agent\n\nagent.main()\n"


class Cycle:
    """One cloud's emulator and a template board; attempt() boots a fresh copy of it."""

    def __init__(self, cloud, runtime, image, work, board="esp32"):
        self.cloud = cloud
        self.runtime = runtime
        self.work = work / ("%s-%s-%s" % (cloud, runtime, board))
        self.work.mkdir()
        self.server = emu.start(cloud, image=str(image), version=demo.NEW)
        try:
            cfg = self.work / "ota.json"
            cfg.write_text(json.dumps(demo.board_config(cloud, self.server.info())))
            self.template = self.work / "template"
            # the agent alone: firmware/main.py is an example application around it, whose
            # own loop would keep a board running after the agent stopped
            main = self.work / "main.py"
            main.write_text(AGENT_MAIN)
            _vboard("create", self.template, "--board", board, "--version", demo.OLD,
                    "--config", cfg, "--put", "%s:/main.py" % main, "--force")  # fmt: skip
        except BaseException:
            self.server.stop()
            raise
        self.tries = []  # (heap, passed) in the order tried

    def close(self):
        self.server.stop()

    def attempt(self, heap):
        """-> (passed, idle heap or None, why it failed)."""
        _post(self.server, "reset", {})  # the pending update as at the start, an empty log
        board = self.work / "board"
        shutil.rmtree(board, ignore_errors=True)
        shutil.copytree(self.template, board)
        status, events, stderr = _boot(board, heap, self.runtime)
        slots = json.loads(_vboard("inspect", board, timeout=60))
        versions = {s.get("label"): s.get("version") for s in slots.get("slots", [])}
        state = demo.control(self.server, "state")
        passed = (
            status == 0
            and versions.get(slots.get("booted")) == demo.NEW
            and demo.cloud_agrees(self.cloud, state)
        )
        self.tries.append((heap, passed))
        return passed, _idle_heap(events), None if passed else _why(status, events, stderr)


def _idle_heap(events):
    """The idle event's heap minus the heap in use as boot.py started; None when the idle event
    carries no heap figure (or there was no idle event)."""
    idle = [e for e in events if e.get("event") == "idle"]
    if not idle or "heap" not in idle[-1]:
        return None
    ready = [
        e for e in events if e.get("event") == "ready" and e.get("boot") == idle[-1].get("boot")
    ]
    if not ready or "alloc" not in ready[-1]:
        return None
    return idle[-1]["heap"] - ready[-1]["alloc"]


def _full_cycle(cloud, runtime, image, work, board="esp32"):
    """{heap, idle, tries, seconds} of one cloud on one runtime and board."""
    t0 = time.monotonic()
    cycle = Cycle(cloud, runtime, image, work, board)
    try:
        passed, idle, why = cycle.attempt(CYCLE_HI)
        if not passed:
            raise BenchError(
                "the %s cycle on %s fails even with %d KB of heap: %s"
                % (cloud, runtime, CYCLE_HI // KB, why)
            )
        lo, hi = CYCLE_LO, CYCLE_HI
        while hi - lo > KB:
            if len(cycle.tries) >= CYCLE_MAX_TRIES:
                raise BenchError(
                    "the %s cycle on %s: no 1 KB bound in %d tries"
                    % (cloud, runtime, len(cycle.tries))
                )
            mid = (lo + hi) // 2 // KB * KB
            if cycle.attempt(mid)[0]:
                hi = mid
            else:
                lo = mid
    finally:
        cycle.close()
    return {"heap": hi, "idle": idle, "tries": cycle.tries, "seconds": time.monotonic() - t0}


# --- the report ----------------------------------------------------------------------------------


def _kb(n):
    return "%d KB" % (n // KB)


def _tables(opts, rts, speeds, heaps, modules, cycles, seconds):
    names = [rt.name for rt in rts]
    out = [
        "Measured by `make bench` on %s on both builds of the MicroPython unix port: %s. i386 "
        "has an ESP32's 4-byte pointers and 16-byte collector blocks, so its heap figures are "
        "the reference; x64's objects are larger (8-byte pointers, 32-byte blocks)."
        % (
            time.strftime("%Y-%m-%d"),
            ", ".join("%s MicroPython %s" % (rt.name, rt.version) for rt in rts),
        ),
        "",
        "## Throughput",
        "",
        "%d rounds, each mode on each build in turn; medians in MB/s (10^6 bytes/s) of a "
        "%d-byte image over loopback from nginx, chunk %d bytes. (a) bare readinto loop, (b) "
        "readinto + MD5 + writeblocks, (c) the engine end to end (MD5 offer, every check, up to "
        "set_boot), (c+) the same with `image_sha=True`, (b+) (b) plus the SHA-256 (c+) adds. "
        "The ratios are the medians of each round's ratio (its two runs are a fraction of a "
        "second apart, so the machine's changing load cancels out), not ratios of the medians. "
        "Target: c/b >= 0.8. Allocation: bytes (c) allocates per chunk with the collector off, "
        "all of them outside the steady state; heap-locked: bytes (c) moved with the heap "
        "locked (its steady state allocates nothing)." % (opts.rounds, IMAGE_SIZE, opts.chunk),
        "",
        "| runtime | (a) bare | (b) minimal | (c) engine | c/b | (c+) | (b+) | c+/b+ | c/a "
        "| bytes allocated per chunk | heap-locked |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        med = {mode: statistics.median(speeds[(name, mode)]) for mode in MODES}
        h = heaps[name]
        out.append(
            "| %s | %.0f MB/s | %.0f MB/s | %.0f MB/s | %.2f | %.0f MB/s | %.0f MB/s | %.2f | %.2f "
            "| %.1f | %d of %d bytes |"
            % (LABELS[name], med["bare"], med["minimal"], med["engine"],
               _ratio(speeds, name, "engine", "minimal"), med["engine-sha"], med["minimal-sha"],
               _ratio(speeds, name, "engine-sha", "minimal-sha"),
               _ratio(speeds, name, "engine", "bare"), h["per_chunk"], h["locked"], IMAGE_SIZE)
        )  # fmt: skip
    out += [
        "",
        "## Heap for (c)",
        "",
        "The smallest `-X heapsize` (1 KB steps, the collector on) at which each run completes, "
        "the agent loaded from .mpy. esp32.Partition is C code on a device: the harness runs "
        "(c) on a lean file-backed stand-in and is measured alone; the test suite's faithful "
        "shim has its own row.",
        "",
        "| heap | " + " | ".join(LABELS[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    rows = [
        ("(c) up to set_boot (target <= 32 KB)", lambda h: _kb(h["engine"])),
        ("harness alone: bench_device and the esp32 stand-in", lambda h: _kb(h["harness"])),
        ("the agent's share: (c) minus the harness", lambda h: _kb(h["engine"] - h["harness"])),
        ("its code: the imports alone minus the harness",
         lambda h: _kb(h["imports"] - h["harness"])),
        ("the run: (c) minus the imports alone", lambda h: _kb(h["engine"] - h["imports"])),
        ("(b) the minimal loop, in the same harness", lambda h: _kb(h["minimal"])),
        ("(c) on the faithful esp32 shim, set_boot included", lambda h: _kb(h["faithful"])),
        ("resident after import: agent / esp32 stand-in",
         lambda h: "%.1f KB / %.1f KB" % (h["resident"][0] / KB, h["resident"][1] / KB)),
    ]  # fmt: skip
    for label, cell in rows:
        out.append("| %s | %s |" % (label, " | ".join(cell(heaps[n]) for n in names)))
    sizes, broken, together, pools, qstrs = modules
    out += [
        "",
        "## Heap per module (%s)" % REFERENCE,
        "",
        "What each module of firmware/fota holds once imported from .mpy: gc.mem_alloc() after "
        "a collection, before and after its import, in a fresh process where the modules it "
        "imports are already loaded. The qstr pools (the names the modules intern) are on the "
        "heap and in these figures; a pool grows in steps, so a module's figure may include "
        "room for the next one's names.",
        "",
        "| module | heap |",
        "|---|---|",
    ]
    out += ["| %s | %d B |" % (name, size) for name, size in sizes]
    out += ["| %s | does not import on this port: %s |" % item for item in sorted(broken.items())]
    total = sum(size for _, size in sizes)
    out.append("| **sum** | **%d B (%.1f KB)** |" % (total, total / KB))
    out.append(
        "| all %d modules imported in one process | %d B (%.1f KB) |"
        % (len(sizes), together, together / KB)
    )
    out.append(
        "| qstr pools after importing everything (%d qstrs; %d B before) | %d B |"
        % (qstrs, pools[0], pools[1])
    )
    out += [
        "",
        "## The full update cycle on the virtual board",
        "",
        "Each cloud's emulator offers %s (%d bytes; on the nRF52840 an MCUboot image of %d "
        "bytes) to a virtual board running %s, with the "
        "agent alone in its main.py (agent.main()): check, "
        "download, verify, activate, reset, confirm, report, idle. Full-cycle heap: the smallest "
        "`vboard.py boot --heap` (the app's free heap when boot.py starts) at which the board "
        "ends on %s and the cloud got the success report without the agent running out of "
        "memory, bisected to 1 KB between %d and %d KB, a fresh board each try. Heap "
        "fragmentation makes the boundary ragged (a heap a little below the figure may pass, "
        "one a little above fail), so the tries are listed: + passed, - failed. Idle heap: what "
        "the agent holds while idle between polls, in the first try: the idle event's heap "
        "figure minus the heap in use as boot.py started."
        % (
            demo.NEW,
            CYCLE_IMAGE_SIZE,
            NRF_IMAGE_SIZE,
            demo.OLD,
            demo.NEW,
            CYCLE_LO // KB,
            CYCLE_HI // KB,
        ),
        "",
        "| cloud | board | runtime | full-cycle heap | idle heap | tries (KB) | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for (cloud, runtime, board), c in cycles.items():
        idle = "n/a (the idle event has no heap figure)"
        if c["idle"] is not None:
            idle = "%.1f KB" % (c["idle"] / KB)
        tries = " ".join("%d%s" % (heap // KB, "+" if ok else "-") for heap, ok in c["tries"])
        out.append(
            "| %s | %s | %s | %s | %s | %s | %.0f s |"
            % (cloud, board, LABELS[runtime], _kb(c["heap"]), idle, tries, c["seconds"])
        )
    if not cycles:
        out.append("| (none: --cycle none) | | | | | | |")
    out += ["", "The whole run took %.0f s, the full-cycle bisections %.0f s of it." % seconds]
    return "\n".join(out) + "\n"


def _clouds(text):
    if text == "none":
        return []
    clouds = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in clouds if c not in emu.CLOUDS]
    if unknown or not clouds:
        raise BenchError("--cycle %s: a comma list of %s, or none" % (text, ", ".join(emu.CLOUDS)))
    return clouds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, help="throughput rounds (default %d)" % DEFAULT_ROUNDS)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--out", default=str(TOOLS / "bench_results.md"))
    ap.add_argument(
        "--cycle", metavar="CLOUD,...",
        help="the clouds of the full-cycle heap (default all; none skips it)",
    )  # fmt: skip
    ap.add_argument(
        "--quick", action="store_true",
        help="a smoke run: %d rounds, the OneNET cycle only" % QUICK_ROUNDS,
    )  # fmt: skip
    opts = ap.parse_args(argv)
    if opts.rounds is None:
        opts.rounds = QUICK_ROUNDS if opts.quick else DEFAULT_ROUNDS
    if opts.cycle is None:
        opts.cycle = "onenet" if opts.quick else ",".join(emu.CLOUDS)
    started = time.monotonic()
    try:
        if opts.rounds < 1 or opts.chunk < 4096 or opts.chunk % 4096:
            raise BenchError("--rounds must be 1 or more, --chunk a multiple of 4096")
        clouds = _clouds(opts.cycle)
        rts = [Runtime(name) for name in RUNTIMES]
        reference = rts[0]
        with tempfile.TemporaryDirectory(prefix="fota-bench-") as tmp:
            work = Path(tmp)
            mpy = _compile(work)
            served, flash, md5, size = _prepare(work)
            with nginx.serve_folder(served) as base:
                common = [base + "/fw.bin", str(size), md5, str(flash), str(opts.chunk), str(work)]
                speeds = _throughput(rts, mpy, common, opts.rounds)
                heaps = {rt.name: _heaps(rt, mpy, common) for rt in rts}
            modules = _modules(reference, mpy)
            image = work / ("fw-%s.bin" % demo.NEW)
            image.write_bytes(
                espidf.make_app_image(demo.NEW, size=CYCLE_IMAGE_SIZE, project="fota-bench")
            )
            nrf_image = work / ("fw-%s-mcuboot.bin" % demo.NEW)
            mcuimage.build(nrf_image, demo.NEW, NRF_IMAGE_SIZE)
            t0 = time.monotonic()
            cycles = {}
            for cloud in clouds:
                for runtime in RUNTIMES:
                    if runtime == REFERENCE or cloud in CYCLE_X64:
                        key = (cloud, runtime, "esp32")
                        cycles[key] = _full_cycle(cloud, runtime, image, work)
                if cloud in CYCLE_NRF:
                    key = (cloud, REFERENCE, NRF_BOARD)
                    cycles[key] = _full_cycle(cloud, REFERENCE, nrf_image, work, NRF_BOARD)
            cycle_s = time.monotonic() - t0
            digests = bench_digest.run(1 if opts.quick else bench_digest.DEFAULT_ROUNDS, work)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 1
    except (BenchError, bench_digest.DigestBenchError, nginx.NginxError, emu.EmuError,
            runtimes.RuntimeMissing, subprocess.SubprocessError, OSError,
            ValueError) as exc:  # fmt: skip
        print("bench: %s" % exc, file=sys.stderr)
        return 1
    seconds = (time.monotonic() - started, cycle_s)
    table = _tables(opts, rts, speeds, heaps, modules, cycles, seconds)
    table += "\n" + "\n".join(digests) + "\n"
    print(table)
    try:
        Path(opts.out).write_text("# Benchmark results\n\n" + table)
    except OSError as exc:
        print("bench: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("bench", main))
