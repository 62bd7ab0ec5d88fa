"""make soak: N randomized update scenarios on virtual boards, each checked for the invariants.

usage: python tools/soak.py [-n N] [--seed S] [-j JOBS] [--out FILE] [--replay SEED ...]
                            [--keep DIR] [--runtime i386|x64]

Each scenario draws, from its own seed, a cloud (every emulator of tools/emu), a board (BOARDS),
a fault of tools/faultproxy.py on the image's answers (mode, the byte it hits, how many
answers) and a power cut at a random flash write of a random boot (or none). It publishes a
2.0.0 image on the cloud's emulator, puts the fault proxy between a board running 1.0.0 and the
emulator, and boots the board (tools/vboard.py boot, the write log on) until the agent goes
idle. Then the proxy passes everything and the board boots again, until the update has settled.
The checks (tools/soak_check.py) after each scenario:

  - the board boots a valid image (else it counts as bricked);
  - no boot wrote the slot it was running;
  - every boot of a switched slot finds the published image's bytes there, unwritten since
    otadata switched to it (else a boot of an unverified image);
  - once the faults stop the update completes: the board runs 2.0.0, confirmed, its bytes the
    published image's, and the cloud knows it; or it ends as designed: a failure reported
    while the faults were on, with a reason that fault can cause (the clouds close the task on
    a failure report; a corrupted image fails its digest and the offer is given up), or a power
    cut before the new image was confirmed (the bootloader goes back; the rollback is reported);
  - re-fetch: after a network interruption the agent noticed (a `retry`), the bytes the server
    had sent in the interrupted answer that the next request asks for again, at most one chunk
    (after a TCP reset it is only measured: the board's TCP stack may drop what had arrived
    unread, bytes the agent never had); after a power cut, the
    bytes the board had programmed into the new slot that it downloads again, at most one
    journal commit (journal_blocks blocks);
  - the cloud saw a consistent report sequence: no success without the new version, no
    progress after a failure (until the next check), no outcome twice (an outcome sent again
    after a power cut that came once it was reached is counted apart);
  - no firmware crash, no internal error.

It prints a table and writes it to --out (default tools/soak_results.md); exit status 1 when any
scenario broke an invariant (their seeds are listed: `--replay SEED` runs one again, `--keep DIR`
keeps its board and records). -j runs scenarios in parallel (default: the CPU count), each
worker with emulators and proxies of its own.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS / "devices"))

import cli  # noqa: E402
import emu  # noqa: E402
import espidf  # noqa: E402
import faultproxy  # noqa: E402
import soak_check  # noqa: E402
import vboard_writes  # noqa: E402
from demo import DOWNLOADS, cloud_agrees  # noqa: E402

OLD, NEW = "1.0.0", "2.0.0"
IMAGE_SIZE = 40_000  # ten 4 KiB blocks: small, so that a scenario takes seconds
CHUNK = 4096
BLOCK = 4096
JOURNAL_BLOCKS = 1  # a commit per block: a power cut loses at most one block
# small windows and short waits: several Range requests per image, a stall costs seconds
CONFIG = {
    "poll_s": 2,
    "progress_step": 25,
    "window": 16384,
    "chunk": CHUNK,
    "journal_blocks": JOURNAL_BLOCKS,
    "deadline_s": 2,
    "retries": 3,
}
BOOT_TIMEOUT_S = 90
SETTLE_RUNS = 3  # runs without faults until the update has settled
RUN_BOOTS = 8


class Board:
    """One row of BOARDS: the profile `vboard.py create --board` takes, the app image maker
    and the range of flash writes a power cut picks from, per boot (writes of boot 1, the
    download's, and of the later boots)."""

    def __init__(self, profile, make_image, writes_first_boot, writes_later_boot):
        self.profile = profile
        self.make_image = make_image
        self.writes = (writes_first_boot, writes_later_boot)


# A board is one row; an nRF board adds its profile, its image maker and its write counts.
BOARDS = {
    "esp32": Board(
        "esp32", lambda v, n: espidf.make_app_image(v, "esp32", n, project="soak"), 75, 13
    ),
}
CLOUDS = tuple(DOWNLOADS)  # onenet, onenet-fuse, sagoo, aliyun, mxchip
# (mode, argument choices): an argument "random" or a byte offset in one Range answer
FAULTS = (
    ("pass", None),
    ("reset-at", "offset"),
    ("truncate-at", "offset"),
    ("stall-at", "offset"),
    ("flip-at", "offset"),
    ("drip", (300,)),
    ("ignore-range", None),
    ("no-length", None),
    ("chunked", None),
    ("status", (500, 503, 404)),
    ("redirect-loop", None),
)
CUT_SHARE = 0.6  # scenarios with a power cut


class SoakError(cli.ToolError):
    pass


def draw(seed):
    """The scenario of one seed: a dict of cloud, board, fault, times, skip, cut."""
    rng = random.Random(seed)
    cloud = rng.choice(CLOUDS)
    board = rng.choice(sorted(BOARDS))
    mode, arg = FAULTS[rng.randrange(len(FAULTS))]
    if arg == "offset":
        arg = rng.randrange(CONFIG["window"])
    elif arg is not None:
        arg = rng.choice(arg)
    times, skip = rng.randint(1, 3), rng.randint(0, 2)
    cut = None
    if rng.random() < CUT_SHARE:
        boot = 1 if rng.random() < 0.7 else 2
        cut = (boot, rng.randint(1, BOARDS[board].writes[boot - 1]))
    return {
        "seed": seed,
        "cloud": cloud,
        "board": board,
        "fault": mode if arg is None else "%s=%s" % (mode, arg),
        "times": times,
        "skip": skip,
        "cut": cut,
    }


class Worker:
    """One thread's emulators, proxies and board templates, kept across its scenarios."""

    def __init__(self, work, runtime):
        self.work = Path(work)
        self.runtime = runtime
        self.servers = {}  # cloud -> (emulator, proxy)
        self.templates = {}  # (board, cloud) -> a created board folder
        self.images = {}  # board -> the 2.0.0 image's path

    def close(self):
        for server, proxy in self.servers.values():
            proxy.stop()
            server.stop()

    def image(self, board):
        if board not in self.images:
            path = self.work / ("fw-%s-%s.bin" % (board, NEW))
            path.write_bytes(BOARDS[board].make_image(NEW, IMAGE_SIZE))
            self.images[board] = path
        return self.images[board]

    def cloud(self, cloud, board):
        if cloud not in self.servers:
            server = emu.start(cloud, image=str(self.image(board)), version=NEW)
            self.servers[cloud] = (server, faultproxy.start(server.url))
        return self.servers[cloud]

    def template(self, board, cloud):
        key = (board, cloud)
        if key not in self.templates:
            server, proxy = self.cloud(cloud, board)
            cfg = dict(server.info()["config"], server=proxy.url, **CONFIG)
            folder = self.work / ("template-%s-%s" % key)
            cfg_path = self.work / ("ota-%s-%s.json" % key)
            cfg_path.write_text(json.dumps(cfg))
            made = _run(
                [
                    "create",
                    str(folder),
                    "--board",
                    BOARDS[board].profile,
                    "--version",
                    OLD,
                    "--config",
                    str(cfg_path),
                    "--force",
                ]
            )
            if made.returncode != 0:
                raise SoakError("vboard create failed: %s" % made.stderr.strip())
            self.templates[key] = folder
        return self.templates[key]

    def scenario(self, scn, keep=None):
        """Run one scenario -> its record (soak_check's shape) with the checks' results."""
        started = time.monotonic()
        cloud, board = scn["cloud"], scn["board"]
        server, proxy = self.cloud(cloud, board)
        folder = Path(keep) if keep else self.work / "board"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.template(board, cloud), folder)
        image = self.image(board)
        _control(server, "reset", {"image": str(image), "version": NEW})
        proxy.arm(
            scn["fault"],
            times=scn["times"],
            skip=scn["skip"],
            only=DOWNLOADS[cloud],
            seed=scn["seed"],
        )
        runs = [self.boot(folder, scn["cut"])]
        downloads = _downloads(proxy.log, DOWNLOADS[cloud])
        faults = proxy.state()["faults"]
        proxy.arm("pass")
        for _ in range(SETTLE_RUNS):
            runs.append(self.boot(folder, None))
            final = _inspect(folder)
            if _settled(runs[-1], final):
                break
        else:
            final = _inspect(folder)
        downloads += _downloads(proxy.log, DOWNLOADS[cloud])
        rec = {
            "scenario": scn,
            "runs": runs,
            "final": final,
            "cloud": cloud,
            "log": _control(server, "log"),
            "state": _control(server, "state"),
            "downloads": downloads,
            "old": OLD,
            "new": NEW,
            "sha256": espidf_sha256(image),
            "fault": scn["fault"],
            "chunk": CHUNK,
            "block": BLOCK,
            "journal_blocks": JOURNAL_BLOCKS,
        }
        violations, facts = soak_check.check(rec)
        if facts["outcome"] == "completed" and not cloud_agrees(cloud, rec["state"]):
            violations.append("the board runs %s but the cloud's task is not done" % NEW)
        facts.update(faults=faults, seconds=time.monotonic() - started)
        rec["violations"], rec["facts"] = violations, facts
        if keep:
            (Path(keep) / "soak-record.json").write_text(json.dumps(rec, indent=1))
        return rec

    def boot(self, folder, cut):
        trace = folder / "writes.jsonl"
        trace.unlink(missing_ok=True)
        args = [
            "boot",
            str(folder),
            "--timeout",
            str(BOOT_TIMEOUT_S),
            "--boots",
            str(RUN_BOOTS),
            "--runtime",
            self.runtime,
            "--trace-writes",
            str(trace),
        ]
        if cut is not None:
            args += ["--power-cut-boot", str(cut[0]), "--power-cut-after-writes", str(cut[1])]
        proc = _run(args)
        events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        events = [e for e in events if e.get("event") not in ("log", "progress")]
        writes = vboard_writes.read(trace) if trace.exists() else []
        return {
            "events": events,
            "writes": writes,
            "status": proc.returncode,
            "stderr": proc.stderr[-2000:],
        }


def espidf_sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _settled(run, final):
    """Nothing more will happen: the last run went idle without starting a download."""
    kinds = [e.get("event") for e in run["events"]]
    return run["status"] == 0 and "start" not in kinds and "rolled_back" not in kinds


def _downloads(log, pattern):
    import re

    rx = re.compile(pattern)
    return [r for r in log if rx.search(r["path"].split("?", 1)[0])]


def _run(args):
    cmd = [sys.executable, str(TOOLS / "vboard.py")] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 60)


def _inspect(folder):
    out = _run(["inspect", str(folder)])
    if out.returncode != 0:
        return {"error": out.stderr.strip()}
    return json.loads(out.stdout)


def _control(server, name, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.control + "/" + name, data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


# --- the run and its table -----------------------------------------------------------------------


def summarize(recs, seconds, jobs, seed):
    """The table, as Markdown lines."""
    n = len(recs)
    facts = [r["facts"] for r in recs]
    bad = [r for r in recs if r["violations"]]
    per = [f["seconds"] for f in facts]
    outcomes = {}
    for f in facts:
        outcomes[f["outcome"]] = outcomes.get(f["outcome"], 0) + 1
    power = [f["refetch_power"] for f in facts if f["refetch_power"] is not None]
    faulted = sum(1 for r in recs if r["facts"]["faults"])
    clouds = {}
    for r in recs:
        c = r["cloud"]
        clouds[c] = clouds.get(c, 0) + 1
    rows = [
        (
            "scenarios",
            "%d (seed %s; %s)"
            % (n, seed, ", ".join("%s %d" % kv for kv in sorted(clouds.items()))),
        ),
        (
            "scenarios with faults injected",
            "%d (%d faulted answers)" % (faulted, sum(f["faults"] for f in facts)),
        ),
        ("scenarios with a power cut", "%d" % sum(1 for f in facts if f["power_cuts"])),
        ("completed updates", "%d" % outcomes.get("completed", 0)),
        (
            "failed while the faults were on, reported (the cloud closed the task; or a corrupted "
            "image, given up)",
            "%d" % outcomes.get("failed", 0),
        ),
        (
            "rolled back as designed (power cut before the confirmation, reported)",
            "%d" % outcomes.get("rolled back", 0),
        ),
        (
            "outcomes sent again after a power cut between the cloud's answer and the state file",
            "%d" % sum(f["resent"] for f in facts),
        ),
        ("bricked boards", "%d" % sum(1 for f in facts if f["bricked"])),
        ("boots of unverified images", "%d" % sum(f["unverified_boots"] for f in facts)),
        (
            "largest re-fetch after an answer truncated, stalled or dripped",
            "%d bytes (bound: one chunk, %d)"
            % (max([f["refetch_network"] for f in facts] or [0]), CHUNK),
        ),
        (
            "largest re-fetch after a TCP reset, counting what the board's TCP stack dropped "
            "with the reset",
            "%d bytes (not bounded: the board never had them)"
            % max([f["refetch_reset"] for f in facts] or [0]),
        ),
        (
            "largest re-fetch after a power cut",
            "%s bytes (bound: one journal commit, %d)"
            % (max(power) if power else "n/a", BLOCK * JOURNAL_BLOCKS),
        ),
        (
            "invariant violations",
            "%d%s"
            % (
                len(bad),
                (": seeds " + " ".join(str(r["scenario"]["seed"]) for r in bad)) if bad else "",
            ),
        ),
        (
            "time",
            "%.0f s with -j %d; %.1f s per scenario (median %.1f s)"
            % (seconds, jobs, sum(per) / max(n, 1), sorted(per)[n // 2] if per else 0),
        ),
    ]
    lines = ["| check | result |", "|---|---|"]
    lines += ["| %s | %s |" % row for row in rows]
    return lines


def run(n, seed, jobs, runtime, out=None, replay=(), keep=None, emit=print):
    master = random.Random(seed)
    seeds = list(replay) or [master.randrange(2**32) for _ in range(n)]
    scenarios = [draw(s) for s in seeds]
    recs = []
    lock = threading.Lock()
    local = threading.local()
    workers = []
    base = Path(tempfile.mkdtemp(prefix="fota-soak-"))
    started = time.monotonic()

    def one(scn):
        w = getattr(local, "worker", None)
        if w is None:
            folder = Path(tempfile.mkdtemp(prefix="w", dir=base))
            w = local.worker = Worker(folder, runtime)
            with lock:
                workers.append(w)
        rec = w.scenario(scn, keep=keep)
        with lock:
            recs.append(rec)
            f = rec["facts"]
            emit(
                "%4d/%d seed %-10d %-11s %-20s cut %-8s -> %-11s %4.1f s%s"
                % (
                    len(recs),
                    len(scenarios),
                    scn["seed"],
                    scn["cloud"],
                    scn["fault"],
                    "%d@%d" % scn["cut"][::-1] if scn["cut"] else "-",
                    f["outcome"],
                    f["seconds"],
                    ("  VIOLATION: " + "; ".join(rec["violations"])) if rec["violations"] else "",
                )
            )
        return rec

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, scenarios))
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(base, ignore_errors=True)
    recs.sort(key=lambda r: seeds.index(r["scenario"]["seed"]))
    lines = summarize(recs, time.monotonic() - started, jobs, seed)
    emit("\n".join(lines))
    if out:
        write_table(out, lines, n, seed, jobs, runtime)
    return recs


def write_table(path, lines, n, seed, jobs, runtime):
    head = [
        "# Soak: randomized update scenarios on the virtual board",
        "",
        "Written by `make soak` (`tools/soak.py -n %d --seed %s -j %d`, on the %s MicroPython)."
        % (n, seed, jobs, runtime),
        "Each scenario: a cloud emulator offers 2.0.0 (%d bytes) to a virtual esp32 board on 1.0.0"
        % IMAGE_SIZE,
        "through tools/faultproxy.py with a random fault on the image's answers and, in most, a",
        "power cut at a random flash write; then the board boots without faults until it settles.",
        "The checks are listed in `tools/soak.py`'s docstring; the config: `%s`."
        % json.dumps(CONFIG, sort_keys=True),
        "",
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(head + lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="scenarios (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(TOOLS / "soak_results.md"), help="the table's file")
    parser.add_argument(
        "--replay",
        type=int,
        nargs="*",
        default=[],
        metavar="SEED",
        help="run these scenarios' seeds instead (the table is not written)",
    )
    parser.add_argument("--keep", help="with --replay: keep the board and record in this folder")
    parser.add_argument("--runtime", default="i386", choices=("i386", "x64"))
    args = parser.parse_args(argv)
    if args.n < 1 or args.jobs < 1:
        raise SoakError("-n and -j must be 1 or more")
    if args.keep and len(args.replay) != 1:
        raise SoakError("--keep takes one --replay SEED")
    out = None if args.replay else args.out
    recs = run(args.n, args.seed, args.jobs, args.runtime, out, args.replay, args.keep)
    return 1 if any(r["violations"] for r in recs) else 0


if __name__ == "__main__":
    sys.exit(cli.run("soak", main))
