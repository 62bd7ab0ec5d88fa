# tools/emu/sagoo.py: Sagoo IoT's device OTA API over HTTP (get_ota_info, write_ota_info).
#
# Sources: Sagoo's "HTTP 协议" page (iotdoc.sagoo.cn/develop/protocol/http: endpoints, fields,
# step values), its AK/SK docs and nexframe's auth/aksk.go (auth), GoFrame's codes, the docs'
# history (body shapes over time). Answers are {"code", "message", "data"?} with
# HTTP 200, as GoFrame's response wrapper writes them. Paths are served with and without the
# /base-api prefix that nginx adds in front of the Go server (as Sagoo's docs say).
#
# Auth (Sagoo's AK/SK docs): query ak, time, sign, appId; sign = lowercase hex
# HMAC-SHA256(sk, "ak=" + ak + "&time=" + time), compared in constant time. No timestamp window
# unless reset sets max_skew_s (the reference verifier has none).
#
# Choices where the sources are silent (also in tools/emulator.py's docstring):
#   - any auth failure is {"code": 61} (GoFrame CodeNotAuthorized); a missing parameter 54, a bad
#     one 53, an unknown deviceKey 65 (CodeNotFound), a report to a finished batch 300;
#   - no update is {"code": 0, "message": "", "data": null};
#   - the batch completes when a get_ota_info reports the target version: HTTP has no version
#     report (none is documented), so this is the only signal a device can give;
#   - `url` points to this server's own /sagoo-files/ route (no auth, standard Range), and
#     `size` is sent only when reset asks for it (the documented object has none).

import hashlib
import hmac
from urllib.parse import quote

from . import ranges
from .base import Emulator
from .records import FAULT_KINDS, ControlError

OK = 0
INVALID_PARAMETER = 53
MISSING_PARAMETER = 54
NOT_AUTHORIZED = 61
NOT_FOUND = 65
BUSINESS = 300

PENDING = "pending"
DOWNLOADING = "downloading"
DOWNLOADED = "downloaded"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = (PENDING, DOWNLOADING, DOWNLOADED)
_STEPS = frozenset([str(n) for n in range(1, 101)] + ["-1", "-2", "-3", "-4"])
_DIGESTS = {"md5": "md5", "sha256": "sha256"}


def sign(sk, ak, time):
    """The AK/SK signature: lowercase hex HMAC-SHA256(sk, "ak=..&time=..")."""
    msg = "ak=%s&time=%s" % (ak, time)
    return hmac.new(sk.encode(), msg.encode(), hashlib.sha256).hexdigest()


class Sagoo(Emulator):
    cloud = "sagoo"
    DEVICE_CONFIG = ("sagoo", (("device_key",) * 2, ("ak",) * 2, ("sk",) * 2, ("app_id",) * 2))
    CREDENTIALS = (
        ("ak", "iotak", "open-API access key"),
        ("sk", "iotsk20200907", "open-API secret key"),
        ("app_id", "fota", "application id (appId)"),
        ("device_key", "dev001", "the device's deviceKey"),
    )
    OPTIONS = {
        "module": "default",  # the batch's OTA module
        "strategy": 1,  # the batch id, extData.strategy
        "sign_method": "MD5",  # MD5 or SHA256, any case: sent as given
        "wrapped_only": False,  # write_ota_info: only {"params": {...}}
        "flat_body_only": False,  # write_ota_info: only the older flat body
        "max_skew_s": None,  # a timestamp window for `time`; None: none (the reference)
        "omit_default_module": False,  # leave out module when it is "default" (doc wording)
        "size": False,  # add data.size (the northbound variant has it)
        "state": PENDING,
    }
    CLI_OPTIONS = (
        ("module", str, "the batch's module (default: default)"),
        ("strategy", int, "the batch id sent in extData.strategy"),
        ("sign_method", str, "MD5 or SHA256 (any case, sent as given)"),
    )
    ENDPOINTS = ("check", "progress", "download")
    FAULT_KINDS = tuple(k for k in FAULT_KINDS if k != "error_body")  # no in-band errors here
    TASK_STATES = (PENDING, DOWNLOADING, DOWNLOADED, COMPLETED, FAILED, CANCELLED)

    def routes(self):
        out = []
        for prefix in ("/base-api/openapi/v1/ota/", "/openapi/v1/ota/"):
            out.append(("GET", prefix + "get_ota_info", self.get_info, "check"))
            out.append(("POST", prefix + "write_ota_info", self.write_info, "progress"))
        out.append(("GET", "/sagoo-files/{strategy}/{name}", self.download, "download"))
        return out

    def setup(self, image, opts):
        method = str(opts["sign_method"]).lower()
        if method not in _DIGESTS:
            raise ControlError("sign_method must be MD5 or SHA256 (any case)")
        if opts["state"] not in self.TASK_STATES:
            raise ControlError("state must be one of %s" % ", ".join(self.TASK_STATES))
        if opts["wrapped_only"] and opts["flat_body_only"]:
            raise ControlError("wrapped_only and flat_body_only exclude each other")
        self.reported = {}
        self.batch = None
        if image is not None:
            self.batch = {
                "state": opts["state"],
                "strategy": opts["strategy"],
                "module": opts["module"],
                "target": image.version,
                "sign_method": opts["sign_method"],
                "sign": getattr(image, _DIGESTS[method]),
                "size": image.size,
                "last_step": None,
                "steps": [],
            }

    def cloud_state(self):
        return {"batch": self.batch, "reported": dict(self.reported)}

    def set_task_state(self, state):
        if self.batch is None:
            raise ControlError("there is no batch (reset with an image first)")
        self.batch["state"] = state

    def error_answer(self, code, message):
        return {"code": code, "message": message}

    def info(self):
        return dict(self.creds, module=self.opts["module"], strategy=self.opts["strategy"])

    async def answer(self, x, code, message=""):
        return await self.send_json(x, {"code": code, "message": message})

    def auth_error(self, x):
        """None when ak/time/sign/appId check out, else why not (Sagoo's AK/SK docs)."""
        q = x.query
        if any(k not in q for k in ("ak", "time", "sign", "appId")):
            return "ak, time, sign and appId are required"
        if q["ak"] != self.creds["ak"] or q["appId"] != self.creds["app_id"]:
            return "unknown ak or appId"
        try:
            when = int(q["time"])
        except ValueError:
            return "time is not an integer"
        expected = sign(self.creds["sk"], q["ak"], q["time"])
        if not hmac.compare_digest(expected.encode(), q["sign"].encode()):
            return "signature mismatch"
        skew = self.opts["max_skew_s"]
        if skew is not None and abs(self.now() - when) > skew:
            return "time outside the %s s window" % skew
        return None

    # -- endpoints

    async def get_info(self, x):
        why = self.auth_error(x)
        if why is not None:
            return await self.answer(x, NOT_AUTHORIZED, "not authorized: " + why)
        q = x.query
        missing = [k for k in ("deviceKey", "version", "module") if not q.get(k)]
        if missing:
            return await self.answer(x, MISSING_PARAMETER, "missing " + ", ".join(missing))
        if q["deviceKey"] != self.creds["device_key"]:
            return await self.answer(x, NOT_FOUND, "device not found")
        self.reported[q["module"]] = q["version"]
        batch = self.batch
        if batch is None or batch["state"] not in ACTIVE or q["module"] != batch["module"]:
            return await self.send_json(x, {"code": OK, "message": "", "data": None})
        if q["version"] == batch["target"]:
            batch["state"] = COMPLETED  # the device runs the target now
            return await self.send_json(x, {"code": OK, "message": "", "data": None})
        digest = batch["sign"]
        if x.fault is not None and x.fault.kind == "wrong_digest":
            digest = digest[:-1] + ("0" if digest[-1] != "0" else "1")
        data = {
            "url": "%s://%s/sagoo-files/%s/%s"
            % (
                x.request.scheme,
                x.request.host,
                quote(str(batch["strategy"])),
                quote(self.image.name),
            ),
            "version": batch["target"],
            "module": batch["module"],
            "sign": digest,
            "signMethod": batch["sign_method"],
            "extData": {"strategy": batch["strategy"]},
        }
        if batch["module"] == "default" and self.opts["omit_default_module"]:
            del data["module"]
        if self.opts["size"]:
            data["size"] = batch["size"]
        return await self.send_json(x, {"code": OK, "message": "", "data": data})

    async def write_info(self, x):
        why = self.auth_error(x)
        if why is not None:
            return await self.answer(x, NOT_AUTHORIZED, "not authorized: " + why)
        body = x.json
        if not isinstance(body, dict):
            return await self.answer(x, INVALID_PARAMETER, "the body must be a JSON object")
        wrapped = isinstance(body.get("params"), dict)
        if wrapped and self.opts["flat_body_only"]:
            return await self.answer(x, INVALID_PARAMETER, "the params wrapper is not accepted")
        if not wrapped and self.opts["wrapped_only"]:
            return await self.answer(x, MISSING_PARAMETER, "missing params")
        p = body["params"] if wrapped else body
        missing = [k for k in ("deviceKey", "step", "strategy") if p.get(k) in (None, "")]
        if missing:
            return await self.answer(x, MISSING_PARAMETER, "missing " + ", ".join(missing))
        if p["deviceKey"] != self.creds["device_key"]:
            return await self.answer(x, NOT_FOUND, "device not found")
        step = p["step"]
        if not isinstance(step, str) or step not in _STEPS:
            return await self.answer(x, INVALID_PARAMETER, 'step must be a string "1".."100"')
        batch = self.batch
        if batch is None or str(p["strategy"]) != str(batch["strategy"]):
            return await self.answer(x, INVALID_PARAMETER, "strategy does not match the batch")
        batch["steps"].append(step)
        if batch["state"] not in ACTIVE:
            return await self.answer(x, BUSINESS, "batch is %s" % batch["state"])
        batch["last_step"] = step
        n = int(step)
        batch["state"] = FAILED if n < 0 else DOWNLOADED if n == 100 else DOWNLOADING
        return await self.answer(x, OK)

    async def download(self, x):
        batch, image = self.batch, self.image
        info = x.request.match_info
        if (
            batch is None
            or info["strategy"] != str(batch["strategy"])
            or info["name"] != image.name
        ):
            return await self.send(x, 404, b"not found\n", "text/plain")
        rng = ranges.rfc7233(x.header("Range"), image.size)
        if rng == ranges.UNSATISFIABLE:
            headers = {"Content-Range": "bytes */%d" % image.size}
            return await self.send(x, 416, b"", "text/plain", headers)
        return await self.send_range(x, image.data, rng, {})
