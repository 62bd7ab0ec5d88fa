"""Make the firmware type check's stub overrides from the pinned MicroPython ESP32 stubs.

usage: python tools/stubs.py STUBS_DIR TYPINGS_DIR

The published stub types `esp32.Partition(id)` as `str`, but the device also takes the integer
constants `Partition.RUNNING` and `Partition.BOOT`. We copy the stub and widen that one parameter,
instead of keeping a hand-written esp32 stub that would drift from the real API.
"""

import pathlib
import sys

import cli

_WRONG = "def __init__(self, id: str, block_size=4096, /) -> None:"
_RIGHT = "def __init__(self, id: int | str, block_size: int = 4096, /) -> None:"


class StubError(cli.ToolError):
    pass


def make_overrides(stubs: pathlib.Path, typings: pathlib.Path) -> None:
    source = (stubs / "esp32.pyi").read_text(encoding="utf-8")
    if source.count(_WRONG) != 1:
        raise StubError(f"{stubs / 'esp32.pyi'}: Partition.__init__ changed; review {__file__}")
    typings.mkdir(parents=True, exist_ok=True)
    (typings / "esp32.pyi").write_text(source.replace(_WRONG, _RIGHT), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        make_overrides(pathlib.Path(argv[1]), pathlib.Path(argv[2]))
    except OSError as exc:
        raise StubError(str(exc)) from None
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("stubs", main, sys.argv))
