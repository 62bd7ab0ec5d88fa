"""The agent's mip package and freezing manifest: firmware/package.json lists every module and is
what tools/mippackage.py makes of firmware/manifest.py; `mpremote mip install` puts the agent on a
virtual board from a local web server, as source and as .mpy; the ESP32 build manifest freezes
the port's modules and every module of the agent.
"""

import contextlib
import functools
import hashlib
import http.server
import json
import re
import selectors
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
TOOLS = ROOT / "tools"
VBOARD = TOOLS / "vboard.py"
MIPPACKAGE = TOOLS / "mippackage.py"
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
TIMEOUT_S = 120
sys.path.insert(0, str(TOOLS))

import mippackage  # noqa: E402


def agent_modules():
    """Every module of the agent, as its path under /lib: what a board must get."""
    return sorted(p.relative_to(FIRMWARE).as_posix() for p in (FIRMWARE / "fota").rglob("*.py"))


def test_package_json_lists_every_module_of_the_agent_and_its_version():
    package = json.loads((FIRMWARE / "package.json").read_text())
    assert package["urls"] == [[m, m] for m in agent_modules()]  # sources beside package.json
    assert package["deps"] == []
    init = (FIRMWARE / "fota" / "__init__.py").read_text()
    assert package["version"] == re.search(r'__version__ = "(.*)"', init).group(1)


def test_package_json_is_what_the_manifest_makes_and_check_says_when_it_is_not(tmp_path):
    done = subprocess.run(
        [sys.executable, str(MIPPACKAGE), "check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert mippackage.package_json(mippackage.read_manifest()) == (
        (FIRMWARE / "package.json").read_text()
    )
    stale = tmp_path / "package.json"
    lines = (FIRMWARE / "package.json").read_text().splitlines(keepends=True)
    stale.write_text("".join(line for line in lines if "fota/ota.py" not in line))
    done = subprocess.run(
        [sys.executable, str(MIPPACKAGE), "check", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "is not current with firmware/manifest.py: run `make package-json`" in done.stderr


def test_the_manifest_lists_every_module_and_the_esp32_build_adds_the_ports_own(tmp_path):
    manifest = mippackage.read_manifest()
    assert sorted(manifest.files) == agent_modules()
    assert (
        manifest.meta["version"] == json.loads((FIRMWARE / "package.json").read_text())["version"]
    )
    # boards/esp32/manifest.py in a build of the port: the port's manifest, then the agent
    port = tmp_path / "ports" / "esp32"
    (port / "boards").mkdir(parents=True)
    (port / "modules").mkdir()
    (port / "modules" / "_boot.py").write_text("# mounts the file system\n")
    (port / "boards" / "manifest.py").write_text('module("_boot.py", base_path="../modules")\n')
    build = mippackage.read_manifest(
        ROOT / "boards" / "esp32" / "manifest.py", {"PORT_DIR": str(port)}
    )
    assert sorted(build.files) == sorted(agent_modules() + ["_boot.py"])
    assert build.external == []
    alone = mippackage.read_manifest(ROOT / "boards" / "esp32" / "manifest.py")
    assert alone.external == ["$(PORT_DIR)/boards/manifest.py"]
    assert sorted(alone.files) == agent_modules()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def web_server(folder):
    """A local http server of folder -> (base URL, list of the paths it was asked for)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Files, directory=str(folder))
    )
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], server.requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def board_console(tmp_path):
    """A virtual board whose /lib has no agent, its console on a pty -> mpremote's port."""
    (tmp_path / "cfg.json").write_text('{"cloud": "onenet"}')
    (tmp_path / "main.py").write_text("# no application\n")
    board = tmp_path / "board"
    cmd = [
        sys.executable,
        str(VBOARD),
        "create",
        str(board),
        "--config",
        str(tmp_path / "cfg.json"),
    ]
    cmd += ["--version", "1.0.0", "--put", "%s:/main.py" % (tmp_path / "main.py")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(
        [sys.executable, str(VBOARD), "repl", str(board), "--heap", "256k", "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(TIMEOUT_S), "no repl event from vboard"
        device = json.loads(proc.stdout.readline())["device"]
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # the other events
        mpremote(device, "fs", "rm", "-r", ":lib")  # the agent `create` installed
        done = run_mpremote(device, "exec", "import fota")
        assert done.returncode == 1 and "no module named 'fota'" in done.stdout + done.stderr
        yield device
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT_S)


def run_mpremote(port, *command):
    return subprocess.run(
        [MPREMOTE, "connect", port, *command], capture_output=True, text=True, timeout=TIMEOUT_S
    )


def mpremote(port, *command):
    done = run_mpremote(port, *command)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


# sha256 of every file under /lib/fota, on the board
_HASHES = """\
import hashlib, os, binascii
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + "/" + name
        if kind == 0x4000:
            walk(p)
        else:
            with open(p, "rb") as f:
                print(p, binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())
walk("/lib/fota")
"""


def board_hashes(port):
    return dict(line.split() for line in mpremote(port, "exec", _HASHES))


def local_hashes(folder):
    return {
        "/lib/" + p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (folder / "fota").rglob("*")
        if p.is_file() and p.suffix in (".py", ".mpy")
    }


def test_mpremote_mip_install_puts_the_agent_on_a_board_from_a_web_server(tmp_path):
    built = tmp_path / "mip"
    done = subprocess.run(
        [sys.executable, str(MIPPACKAGE), "build", str(built)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    with board_console(tmp_path) as port:
        # the repository's own firmware folder, as a checkout or a git host serves it
        with web_server(FIRMWARE) as (base, requested):
            mpremote(port, "mip", "install", base + "/package.json")  # into /lib, from sys.path
        assert sorted(requested) == sorted(["/package.json"] + ["/" + m for m in agent_modules()])
        assert board_hashes(port) == local_hashes(FIRMWARE)
        lines = mpremote(
            port, "exec", "import fota\nfrom fota import ota\nprint(fota.__version__, ota.__file__)"
        )
        assert lines == ["0.1.0 /lib/fota/ota.py"]
        # from a checkout: mpremote reads the files beside package.json
        mpremote(port, "fs", "rm", "-r", ":lib")
        mpremote(port, "mip", "install", str(FIRMWARE / "package.json"))
        assert board_hashes(port) == local_hashes(FIRMWARE)
        # the .mpy build: what a board loads with the least heap
        mpremote(port, "fs", "rm", "-r", ":lib")
        with web_server(built) as (base, requested):
            mpremote(port, "mip", "install", "--target", "/lib", base + "/package.json")
        assert board_hashes(port) == local_hashes(built)
        assert all(path.endswith(".mpy") for path in local_hashes(built))
        assert len(local_hashes(built)) == len(agent_modules())
        lines = mpremote(port, "exec", "from fota import ota\nprint(ota.__file__)")
        assert lines == ["/lib/fota/ota.mpy"]
