# The emulators the emulator tests talk to, as pytest fixtures (a plugin loaded by conftest.py):
# one server per cloud and test module, serving small images whose bytes are known. The images'
# bytes are importable too, so that tests can compare with what a server sent.

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emuclient import Api  # noqa: E402

IMAGE = bytes((i * 7 + 3) % 251 for i in range(5000))  # OneNET's, Sagoo's
N = len(IMAGE)
WIFI = bytes((i * 11 + 5) % 253 for i in range(6000))  # MXCHIP's and Aliyun's
MCU = bytes((i * 3 + 1) % 241 for i in range(3000))  # MXCHIP's file for an attached MCU


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("emu") / "fw-2.0.0.bin"
    path.write_bytes(IMAGE)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emu5")
    (folder / "wifi-2.0.0.bin").write_bytes(WIFI)
    (folder / "mcu-1.1.0.bin").write_bytes(MCU)
    return str(folder / "wifi-2.0.0.bin"), str(folder / "mcu-1.1.0.bin")


def _serve(cloud, image):
    with emu.start(cloud, image=image, version="2.0.0") as server:
        yield Api(server.url, image)


@pytest.fixture(scope="module")
def onenet(image_path):
    yield from _serve("onenet", image_path)


@pytest.fixture(scope="module")
def fuse(image_path):
    yield from _serve("onenet-fuse", image_path)


@pytest.fixture(scope="module")
def sag(image_path):
    yield from _serve("sagoo", image_path)


@pytest.fixture(scope="module")
def ali(images):
    yield from _serve("aliyun", images[0])


@pytest.fixture(scope="module")
def mx(images):
    yield from _serve("mxchip", images[0])
