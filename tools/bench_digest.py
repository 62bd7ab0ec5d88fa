"""Digest speeds: the agent's pure-Python MD5 and SHA-256 beside hashlib's C code.

usage: python tools/bench_digest.py [--rounds N]

Runs tools/bench_digest_device.py on both builds of the MicroPython unix port (tools/runtimes.py)
with the agent loaded from .mpy: hashlib's md5 and sha256 (C), then fota.core.md5 and
fota.core.sha256 with their viper block function and with their plain-Python one, each hashing
a 4096-byte memoryview over and over. Prints KB/s (the median of the rounds) and each pure
digest's share of hashlib's speed. `make bench` runs this as its last section; alone it takes
about 15 s. Errors: `bench_digest: message`, exit status 1.
"""

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cli
import fsimage
import runtimes

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
MODULES = ("fota/__init__.py", "fota/core/viper.py", "fota/core/md5.py", "fota/core/sha256.py")
KERNELS = ("native", "viper", "plain")
TIMEOUT_S = 120
DEFAULT_ROUNDS = 3


class DigestBenchError(cli.ToolError):
    pass


def compile_modules(work):
    """The digests and the device script as .mpy in work/digest-mpy (source would be compiled
    in the measured process)."""
    tool = fsimage.mpy_cross()
    if tool is None:
        raise DigestBenchError("no mpy-cross: run `make setup`")
    out = Path(work) / "digest-mpy"
    jobs = [(ROOT / "firmware" / rel, rel) for rel in MODULES]
    jobs.append((TOOLS / "bench_digest_device.py", "bench_digest_device.py"))
    for src, rel in jobs:
        try:
            data = fsimage.compile_mpy(tool, src, rel)
        except fsimage.FsImageError as exc:
            raise DigestBenchError(str(exc)) from None
        dest = out / (rel[:-3] + ".mpy")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return out


def measure(runtime, mpy, rounds):
    """{(algorithm, kernel): [KB/s of each round]} on one build (a tools/runtimes.py name)."""
    cmd = runtimes.command(runtime) + ["-m", "bench_digest_device", str(rounds)]
    env = dict(os.environ, MICROPYPATH=str(mpy))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise DigestBenchError("%s: no result in %d s" % (runtime, TIMEOUT_S)) from None
    speeds = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0] == "DIGEST":
            nbytes, us = int(fields[3]), max(int(fields[4]), 1)
            speeds.setdefault((fields[1], fields[2]), []).append(nbytes / 1024 / (us / 1e6))
    if proc.returncode != 0 or not speeds:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        raise DigestBenchError("%s: %s" % (runtime, lines[-1] if lines else "no output"))
    return speeds


def table(results):
    """Markdown lines for {runtime: measure(...)}."""
    out = [
        "## Digests without hashlib",
        "",
        "KB/s hashing a 4096-byte memoryview again and again (median of the rounds), with the "
        "agent's modules loaded from .mpy: hashlib's C code, then fota.core.md5 and "
        "fota.core.sha256 with their viper and their plain-Python block functions.",
        "",
        "| digest | runtime | hashlib (C) | viper | plain | viper / C | plain / C |",
        "|---|---|---|---|---|---|---|",
    ]
    for algorithm in ("md5", "sha256"):
        for runtime, speeds in results.items():
            med = {}
            for kernel in KERNELS:
                values = speeds.get((algorithm, kernel))
                med[kernel] = statistics.median(values) if values else None
            cells = ["%.0f" % med[k] if med[k] else "n/a" for k in KERNELS]
            native = med["native"]
            ratios = [
                "%.3f" % (med[k] / native) if med[k] and native else "n/a"
                for k in ("viper", "plain")
            ]
            out.append("| %s | %s | %s |" % (algorithm, runtime, " | ".join(cells + ratios)))
    return out


def run(rounds, work):
    """table() lines for every selected build, i386 (the reference) first."""
    mpy = compile_modules(work)
    names = [name for name in ("i386", "x64") if name in runtimes.selected()]
    return table({name: measure(name, mpy, rounds) for name in names})


def main(argv=None):
    ap = cli.Parser(prog="bench_digest", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    opts = ap.parse_args(argv)
    if opts.rounds < 1:
        raise DigestBenchError("--rounds must be 1 or more")
    with tempfile.TemporaryDirectory(prefix="fota-digest-") as work:
        try:
            lines = run(opts.rounds, work)
        except runtimes.RuntimeMissing as exc:
            raise DigestBenchError(str(exc)) from None
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("bench_digest", main))
