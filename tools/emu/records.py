# tools/emu/records.py: the emulators' typed errors and the records behind the control API:
# the served image (read once at reset, with its digests) and one queued fault.

import hashlib
import os

FAULT_KINDS = ("drop", "stall", "silent", "status", "code", "wrong_digest", "error_body")
_DEFAULT_ON = {"wrong_digest": "check", "code": "check"}  # every other kind: "download"


class EmuError(Exception):
    """A problem the command line prints as `emulator: message` (exit status 1)."""


class ControlError(EmuError):
    """A bad request to the control API, answered 400 {"error": message}."""


class Image:
    """The pending update: the file's bytes (read once, at reset), its digests and version.

    An ESP32 app image whose app descriptor, or an MCUboot image whose header, names another
    version than `version` is refused (ControlError) unless any_version: a device would download
    it and then refuse it, or boot a version the cloud does not expect. Other files (an MCU's)
    are served as they are."""

    def __init__(self, path, version, any_version=False):
        if not isinstance(version, str) or not version:
            raise ControlError("an image needs a version (a non-empty string)")
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except (OSError, TypeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise EmuError("cannot read image %s: %s" % (path, why)) from None
        found = descriptor_version(self.data)
        if found is not None and found != version and not any_version:
            raise ControlError(
                "image %s: its %s says version %s, not %s (any_version to serve it anyway)"
                % (path, _WHERE.get(self.data[0], "MCUboot header"), found, version)
            )
        self.any_version = any_version
        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        self.version = version
        self.size = len(self.data)
        self.md5 = hashlib.md5(self.data).hexdigest()
        self.sha256 = hashlib.sha256(self.data).hexdigest()

    def describe(self):
        keys = ("path", "name", "version", "size", "md5", "sha256")
        return {k: getattr(self, k) for k in keys}


_WHERE = {0xE9: "app descriptor"}  # where an image of this first byte names its version


def descriptor_version(data):
    """The version an image says it is: an ESP32 app image's app descriptor, or an MCUboot
    image's ih_ver as major.minor.revision (+build when not 0, as the agent reads it); None for
    another kind of file."""
    from appimage import IMAGE_MAGIC, app_descriptor  # tools/appimage.py

    if not data:
        return None
    if data[0] == IMAGE_MAGIC:
        desc = app_descriptor(data)
        return desc["version"] if desc else None
    import mcuboot_image  # tools/mcuboot_image.py

    if len(data) < 4 or int.from_bytes(data[:4], "little") != mcuboot_image.IMAGE_MAGIC:
        return None
    try:
        return mcuboot_image.parse(data).agent_version
    except mcuboot_image.ImageError:
        return None


class Fault:
    """One queued fault: `kind` on the next `times` requests to endpoint `on` ("*" = any)."""

    def __init__(self, spec, endpoints, kinds=FAULT_KINDS):
        if not isinstance(spec, dict):
            raise ControlError("a fault is a JSON object")
        unknown = sorted(set(spec) - {"kind", "on", "after", "status", "times", "code"})
        if unknown:
            raise ControlError("unknown fault field(s): %s" % ", ".join(unknown))
        self.kind = spec.get("kind")
        if self.kind not in kinds:
            raise ControlError("fault kind must be one of %s" % ", ".join(kinds))
        self.on = spec.get("on", _DEFAULT_ON.get(self.kind, "download"))
        if self.on != "*" and self.on not in endpoints:
            raise ControlError("fault 'on' must be '*' or one of %s" % ", ".join(endpoints))
        if self.kind == "error_body" and self.on != "download":
            raise ControlError("error_body applies to downloads only")
        if self.kind == "wrong_digest" and self.on != "check":
            raise ControlError("wrong_digest applies to the check only")
        if self.kind == "code" and self.on == "download":
            raise ControlError("code applies to JSON endpoints, not downloads")
        self.after = _int(spec, "after", 0, 0)
        self.status = _int(spec, "status", 503, 100)
        self.times = _int(spec, "times", 1, 1)
        self.code = _int(spec, "code", 1, None)  # code, error_body: the error number to send

    def describe(self):
        keys = ("kind", "on", "after", "status", "times", "code")
        return {k: getattr(self, k) for k in keys}


def _int(spec, name, default, minimum):
    value = spec.get(name, default)
    if type(value) is not int or (minimum is not None and value < minimum):
        raise ControlError("fault %s must be an integer >= %s" % (name, minimum))
    return value
