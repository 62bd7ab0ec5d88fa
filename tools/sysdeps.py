"""The Debian packages `make test` and `make bench` need beside the .venv, installed when missing.

usage: python tools/sysdeps.py nginx

nginx serves the network tests' files and the benchmark's image. When it is there, this prints
nothing and exits 0. When it is missing and this runs as root on a host with apt-get, it runs
`apt-get update` and `apt-get install -y --no-install-recommends nginx` (non-interactive, with a
timeout). Otherwise it prints the one command that installs it (`sysdeps: nginx is missing: run
`sudo apt-get install -y nginx``) and exits 1.
"""

import os
import shutil
import subprocess
import sys

import cli

APT_TIMEOUT_S = 900


def _nginx_found():
    import nginx

    try:
        nginx.binary()
    except nginx.NginxError:
        return False
    return True


# package -> a function that says whether it is installed
PACKAGES = {"nginx": _nginx_found}


class SysdepsError(cli.ToolError):
    pass


def install_command(packages, uid=None):
    """The command a user pastes to install `packages`: with sudo unless root."""
    if uid is None:
        uid = os.geteuid()
    sudo = "" if uid == 0 else "sudo "
    return "%sapt-get install -y %s" % (sudo, " ".join(packages))


def ensure(packages, installed=None, uid=None, apt=None, run=subprocess.run):
    """Install the missing ones of `packages` with apt-get when root, else SysdepsError with the
    command to paste. installed(name) -> bool, uid, apt (apt-get's path or None) and run
    default to this host's. -> the packages it installed."""
    installed = installed or (lambda name: PACKAGES[name]())
    missing = [name for name in packages if not installed(name)]
    if not missing:
        return []
    uid = os.geteuid() if uid is None else uid
    apt = shutil.which("apt-get") if apt is None else apt
    what = " and ".join(missing)
    if not apt:
        raise SysdepsError(
            "%s missing: install %s with the system's package manager (Debian: %s)"
            % (what, "it" if len(missing) == 1 else "them", install_command(missing, uid))
        )
    if uid != 0:
        raise SysdepsError("%s missing: run `%s`" % (what, install_command(missing, uid)))
    print("sysdeps: installing %s with apt-get" % what, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        try:
            done = run(cmd, env=env, timeout=APT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            took = "`%s` took more than %d s" % (" ".join(cmd), APT_TIMEOUT_S)
            raise SysdepsError(took) from None
        if done.returncode != 0:
            raise SysdepsError("`%s` failed (exit status %d)" % (" ".join(cmd), done.returncode))
    still = [name for name in missing if not installed(name)]
    if still:
        raise SysdepsError("apt-get installed %s, but it is still not found" % " and ".join(still))
    return missing


def main(argv=None):
    parser = cli.Parser(prog="sysdeps", description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", choices=sorted(PACKAGES), metavar="PACKAGE")
    args = parser.parse_args(argv)
    ensure(args.packages)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("sysdeps", main))
