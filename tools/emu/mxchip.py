# tools/emu/mxchip.py: MXCHIP FOG's OTA API (2018 notes at www.zybuluo.com/soszrg/note/1336476):
# the device check and version report, and the management API a user publishes firmware with.
#
#   device      GET  /api/v1/ota/device/?product_id=&wifi_version=&mcu_version=      "check"
#               PUT  /api/v1/ota/version/ {device_id, wifi_version, mcu_version}       "version"
#   management  GET  /oss_token/ota/                                                   "manage"
#               POST/GET /api/v1/ota/{product_id}/files/                               "manage"
#               GET/PUT/DELETE /api/v1/ota/{product_id}/files/{id}                     "manage"
#   files       GET  /files/{key}  (RFC 7233 Range)                                    "download"
#               POST /files/       the OSS-style form upload the oss token signs        "upload"
#
# This module has the device API, the route table and the file records; the management API's
# handlers and the upload are in mxchip_admin.py.
#
# Every answer is {"meta": {"code", "message"}, "data": ...}; every API call needs
# `Authorization: token <token>` (the notes put that one header above all calls). A device
# check offers at most one file per ota_type (0 mcu, 1 wifi): the newest file of that type that is
# not deleted or invalid (status 2), when its version differs from the one the device sent. The
# version PUT records the device's versions; a file whose version it reports for its type is
# "succeeded": the notes have no other result report.
#
# Choices where the notes are silent (also in tools/emulator.py's docstring):
#   - no or a malformed Authorization header: HTTP 401, meta code 27054; a wrong token: HTTP 401,
#     meta code 1201 (FOG v2's "no/bad auth header" and "token error" in its SDK and docs);
#   - parameter errors are HTTP 400 with meta code 10000 (also an unknown product, device or file
#     id for GET and PUT); DELETE answers 10500 for an unknown id and 10501 for a file that is not
#     in status 0 (test), as the notes' table says;
#   - the notes' example URL `/api/v1/ota/devce/` (sic) is served as well;
#   - `version` is unique per product and ota_type among files not deleted (the notes say per
#     product, but its own device answer shows an mcu and a wifi file both at 1.0.1);
#   - files created through the API start in status 0 (test), as the notes' answer shows; PUT also
#     takes `status` and `customize`; both test and online files are offered to devices (the
#     check carries no MAC, so mac_range is stored but cannot be applied); DELETE is a soft
#     delete (is_delete true; the file disappears from the list and GET);
#   - a file_url starting with "/" is this server's: answers give it with the scheme and host
#     the client used. Images published by reset are served at /files/ota/{wifi|mcu}/{name};
#   - the oss token signs an upload to this server (/files/, OSS PostObject form fields); with
#     the token's `callback` field the upload answers the callback's JSON (file_url, md5, size)
#     as OSS does, else success_action_status (default 204).

import hashlib
import hmac
from urllib.parse import parse_qs, quote, unquote

from . import ranges
from .base import Emulator
from .mxchip_admin import (
    DOWNLOADING,
    INVALID,
    MCU,
    OFFERED,
    OK,
    ONLINE,
    OSS_LIFE_S,
    PARAM_ERROR,
    PUBLISHED,
    SUCCEEDED,
    TEST,
    WIFI,
    MxchipAdmin,
    iso_time,
)
from .records import FAULT_KINDS, ControlError, Image

TOKEN_ERROR = 1201  # FOG v2: token error
NO_AUTH_HEADER = 27054  # FOG v2 (third-party doc): no or bad Authorization header

SAMPLE_TOKEN = "d79be1d657d9a8b45f6f903620e84b06cbf225e0"  # the notes'
_TYPE_NAMES = {MCU: "mcu", WIFI: "wifi"}


class Mxchip(MxchipAdmin, Emulator):
    cloud = "mxchip"
    DEVICE_CONFIG = ("mxchip", (("product_id",) * 2, ("device_id",) * 2, ("token",) * 2))
    CREDENTIALS = (
        (
            "token",
            SAMPLE_TOKEN,
            "API token (Authorization: token ...), for the device and the management API",
        ),
        ("product_id", "test", "product id"),
        ("device_id", "mxdev001", "the device's id (version PUT)"),
    )
    OPTIONS = {
        "mcu_image": None,  # a path: published as an mcu file (ota_type 0) next to the wifi one
        "mcu_version": None,  # its version
        "file_status": ONLINE,  # status of the files reset publishes: 0 test, 1 online, 2 invalid
        "customize": "",  # their customize field
        "device_wifi_version": None,  # the device's versions as the platform knows them
        "device_mcu_version": None,
        "oss_lifetime_s": OSS_LIFE_S,  # life of an oss token's policy
    }
    CLI_OPTIONS = (
        ("mcu_image", str, "an image for the attached MCU (ota_type 0)"),
        ("mcu_version", str, "its version"),
        ("file_status", int, "status of the published files: 0 test, 1 online (default)"),
    )
    ENDPOINTS = ("check", "version", "download", "manage", "upload")
    FAULT_KINDS = tuple(k for k in FAULT_KINDS if k != "error_body")

    def routes(self):
        files = "/api/v1/ota/{pid}/files/"
        out = [
            ("GET", "/api/v1/ota/device/", self.check, "check"),
            ("GET", "/api/v1/ota/devce/", self.check, "check"),  # the notes' example URL (sic)
            ("PUT", "/api/v1/ota/version/", self.version, "version"),
            ("GET", "/oss_token/ota/", self.oss_token, "manage"),
            ("POST", files, self.create, "manage"),
            ("GET", files, self.list, "manage"),
        ]
        for path in (files + "{fid}", files + "{fid}/"):
            out.append(("GET", path, self.get, "manage"))
            out.append(("PUT", path, self.update, "manage"))
            out.append(("DELETE", path, self.delete, "manage"))
        out.append(("GET", "/files/{key:.+}", self.download, "download"))
        out.append(("POST", "/files", self.upload, "upload"))
        out.append(("POST", "/files/", self.upload, "upload"))
        return out

    def setup(self, image, opts):
        if opts["file_status"] not in (TEST, ONLINE, INVALID):
            raise ControlError("file_status must be 0 (test), 1 (online) or 2 (invalid)")
        for name in ("device_wifi_version", "device_mcu_version", "customize"):
            if opts[name] is not None and not isinstance(opts[name], str):
                raise ControlError("%s must be a string" % name)
        mcu = None
        if opts["mcu_image"] is not None:
            mcu = Image(opts["mcu_image"], opts["mcu_version"])
        elif opts["mcu_version"] is not None:
            raise ControlError("mcu_version needs an mcu_image")
        self.files = []  # every file record, deleted ones too, in id order
        self.jobs = {}  # file id -> {"state", "downloads"}
        self.blobs = {}  # key under /files/ -> bytes
        self.next_id = 1
        self.device = {
            "device_id": self.creds["device_id"],
            "wifi_version": opts["device_wifi_version"],
            "mcu_version": opts["device_mcu_version"],
        }
        self.checks = []  # [wifi_version, mcu_version] of every device check
        self.reports = []  # every accepted version PUT body
        for ota_type, img in ((WIFI, image), (MCU, mcu)):
            if img is None:
                continue
            key = "ota/%s/%s" % (_TYPE_NAMES[ota_type], img.name)
            self.blobs[key] = img.data
            fields = {
                "file_name": img.name,
                "file_url": "/files/" + quote(key),
                "md5": img.md5,
                "size": str(img.size),
                "version": img.version,
                "customize": opts["customize"],
            }
            self._new_file(ota_type, fields, opts["file_status"])
        self.mcu_image = mcu

    def cloud_state(self):
        return {
            "mcu_image": self.mcu_image.describe() if self.mcu_image else None,
            "files": self.files,
            "jobs": {str(k): dict(v) for k, v in self.jobs.items()},
            "device": dict(self.device),
            "checks": self.checks,
            "reports": self.reports,
            "uploads": sorted(self.blobs),
        }

    def error_answer(self, code, message):
        return {"meta": {"code": code, "message": message}, "data": {}}

    async def answer(self, x, code, message, data=None, status=None):
        obj = {"meta": {"code": code, "message": message}, "data": {} if data is None else data}
        if status is None:
            status = 200 if code == OK else 400
        return await self.send_json(x, obj, status)

    # -- helpers

    def _new_file(self, ota_type, fields, status):
        now = iso_time(self.now())
        record = {
            "id": self.next_id,
            "product": self.creds["product_id"],
            "ota_type": ota_type,
            "file_name": fields.get("file_name", ""),
            "file_url": fields["file_url"],
            "size": fields["size"],
            "md5": fields["md5"],
            "version": fields["version"],
            "mac_range": fields.get("mac_range"),
            "customize": fields.get("customize", ""),
            "created_at": now,
            "updated_at": now,
            "description": fields.get("description", ""),
            "status": status,
            "is_delete": False,
            "extra": {},
        }
        self.next_id += 1
        self.files.append(record)
        self.jobs[record["id"]] = {"state": PUBLISHED, "downloads": 0}
        return record

    def _live(self):
        return [f for f in self.files if not f["is_delete"]]

    def _url(self, x, url):
        if url.startswith("/"):
            return "%s://%s%s" % (x.request.scheme, x.request.host, url)
        return url

    def auth_error(self, x):
        """None when the Authorization header carries the token, else (meta code, message)."""
        header = x.header("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "token" or not value.strip():
            return NO_AUTH_HEADER, "Authorization: token <token> required"
        if not hmac.compare_digest(value.strip().encode(), self.creds["token"].encode()):
            return TOKEN_ERROR, "token error"
        return None

    def _gate(self, x, product=False):
        """(meta code, message, HTTP status) of an auth (or, with product, an unknown product in
        the path) failure, or None."""
        failed = self.auth_error(x)
        if failed is not None:
            return failed + (401,)
        if product:
            pid = x.request.match_info["pid"]
            if pid != self.creds["product_id"]:
                return PARAM_ERROR, "unknown product %s" % pid, 400
        return None

    async def fail(self, x, code, message, status):
        return await self.answer(x, code, message, status=status)

    def _body(self, x):
        """The request's fields: a JSON object or a urlencoded form; None when neither."""
        if isinstance(x.json, dict):
            return x.json
        ctype = x.request.content_type
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(x.body.decode("utf-8", "replace"), keep_blank_values=True)
            out = {k: v[-1] for k, v in form.items()}
            if "mac_range" in form:
                out["mac_range"] = form["mac_range"]
            return out
        if not x.body:
            return {}
        return None

    def _current(self, ota_type):
        """The file a device check offers for ota_type: the newest live, non-invalid one."""
        for f in reversed(self._live()):
            if f["ota_type"] == ota_type and f["status"] != INVALID:
                return f
        return None

    # -- device API

    async def check(self, x):
        failed = self._gate(x)
        if failed:
            return await self.fail(x, *failed)
        q = x.query
        missing = [k for k in ("product_id", "wifi_version", "mcu_version") if not q.get(k)]
        if missing:
            return await self.answer(x, PARAM_ERROR, "missing parameter(s): " + ", ".join(missing))
        if q["product_id"] != self.creds["product_id"]:
            return await self.answer(x, PARAM_ERROR, "unknown product %s" % q["product_id"])
        self.checks.append([q["wifi_version"], q["mcu_version"]])
        files = []
        for ota_type, have in ((MCU, q["mcu_version"]), (WIFI, q["wifi_version"])):
            f = self._current(ota_type)
            if f is None or f["version"] == have:
                continue
            md5 = f["md5"]
            if x.fault is not None and x.fault.kind == "wrong_digest":
                md5 = md5[:-1] + ("0" if md5[-1:] != "0" else "1")
            files.append(
                {
                    "file_url": self._url(x, f["file_url"]),
                    "md5": md5,
                    "version": f["version"],
                    "ota_type": ota_type,
                    "customize": f["customize"],
                }
            )
            job = self.jobs[f["id"]]
            if job["state"] == PUBLISHED:
                job["state"] = OFFERED
        data = {"need_ota": bool(files), "files": files}
        return await self.answer(x, OK, "ota file info", data)

    async def version(self, x):
        failed = self._gate(x)
        if failed:
            return await self.fail(x, *failed)
        body = self._body(x)
        if body is None:
            return await self.answer(x, PARAM_ERROR, "the body must be JSON")
        names = ("device_id", "wifi_version", "mcu_version")
        missing = [k for k in names if body.get(k) in (None, "")]
        if missing:
            return await self.answer(x, PARAM_ERROR, "missing parameter(s): " + ", ".join(missing))
        if not all(isinstance(body[k], str) for k in names):
            return await self.answer(x, PARAM_ERROR, "the versions and device_id are strings")
        if body["device_id"] != self.creds["device_id"]:
            return await self.answer(x, PARAM_ERROR, "unknown device %s" % body["device_id"])
        self.device.update({k: body[k] for k in names})
        self.reports.append({k: body[k] for k in names})
        for f in self._live():
            have = body["wifi_version"] if f["ota_type"] == WIFI else body["mcu_version"]
            if f["version"] == have:
                self.jobs[f["id"]]["state"] = SUCCEEDED
        return await self.answer(x, OK, "update version ok", {})

    # -- files

    async def download(self, x):
        key = unquote(x.request.match_info["key"])
        data = self.blobs.get(key)
        if data is None:
            return await self.send(x, 404, b"not found\n", "text/plain")
        path = "/files/" + quote(key)
        for f in self._live():
            if f["file_url"] == path and self.jobs[f["id"]]["state"] in (PUBLISHED, OFFERED):
                self.jobs[f["id"]]["state"] = DOWNLOADING
            if f["file_url"] == path:
                self.jobs[f["id"]]["downloads"] += 1
        rng = ranges.rfc7233(x.header("Range"), len(data))
        if rng == ranges.UNSATISFIABLE:
            headers = {"Content-Range": "bytes */%d" % len(data)}
            return await self.send(x, 416, b"", "text/plain", headers)
        etag = '"%s"' % hashlib.md5(data).hexdigest().upper()
        return await self.send_range(x, data, rng, {"ETag": etag, "Accept-Ranges": "bytes"})
