"""Setting up a fresh machine: tools/sysdeps.py installs nginx as root or prints the command to
paste, and `make help` names every variable the Makefile reads."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import sysdeps  # noqa: E402

TIMEOUT_S = 60


class _Apt:
    """apt-get as seen by sysdeps.ensure: records the commands; nginx appears after install."""

    def __init__(self, status=0):
        self.commands = []
        self.status = status
        self.has_nginx = False

    def installed(self, name):
        assert name == "nginx"
        return self.has_nginx

    def run(self, cmd, env, timeout, check):
        assert timeout and not check
        self.commands.append((cmd, env.get("DEBIAN_FRONTEND")))
        if "install" in cmd and self.status == 0:
            self.has_nginx = True
        return subprocess.CompletedProcess(cmd, self.status)


def test_root_installs_nginx_with_apt_get_non_interactively():
    apt = _Apt()
    done = sysdeps.ensure(["nginx"], apt.installed, uid=0, apt="/usr/bin/apt-get", run=apt.run)
    assert done == ["nginx"]
    assert apt.commands == [
        (["/usr/bin/apt-get", "update", "-qq"], "noninteractive"),
        (
            ["/usr/bin/apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"],
            "noninteractive",
        ),
    ]


def test_nothing_runs_when_nginx_is_there():
    apt = _Apt()
    apt.has_nginx = True
    assert (
        sysdeps.ensure(["nginx"], apt.installed, uid=0, apt="/usr/bin/apt-get", run=apt.run) == []
    )
    assert apt.commands == []


def test_another_user_gets_the_command_to_paste_and_nothing_runs():
    apt = _Apt()
    try:
        sysdeps.ensure(["nginx"], apt.installed, uid=1000, apt="/usr/bin/apt-get", run=apt.run)
    except sysdeps.SysdepsError as exc:
        assert str(exc) == "nginx missing: run `sudo apt-get install -y nginx`"
    else:
        raise AssertionError("no error")
    assert apt.commands == []


def test_a_failed_apt_get_or_a_host_without_apt_is_one_error():
    apt = _Apt(status=100)
    try:
        sysdeps.ensure(["nginx"], apt.installed, uid=0, apt="/usr/bin/apt-get", run=apt.run)
    except sysdeps.SysdepsError as exc:
        assert "failed (exit status 100)" in str(exc)
    else:
        raise AssertionError("no error")
    try:
        sysdeps.ensure(["nginx"], apt.installed, uid=0, apt="", run=apt.run)
    except sysdeps.SysdepsError as exc:
        assert "system's package manager (Debian: apt-get install -y nginx)" in str(exc)
    else:
        raise AssertionError("no error")


def test_sysdeps_on_this_host_finds_nginx_and_says_nothing():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "sysdeps.py"), "nginx"],
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_make_help_names_every_variable_of_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    variables = set(re.findall(r"^([A-Z_]+) \?=", makefile, re.M))
    assert {"PORT", "BOARD", "CONFIG", "FIRMWARE", "FOTA_RUNTIMES", "PUT", "CLOUD"} <= variables
    done = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    named = set(re.findall(r"^  ([A-Z_]+)=", done.stdout, re.M))
    assert variables <= named, variables - named
