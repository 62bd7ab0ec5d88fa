# tools/emu/aliyun.py: Aliyun IoT's HTTP(S) channel (help.aliyun.com/document_detail/58034.html,
# "HTTP连接通信") and its OTA service behind it: /auth, publishes to /topic/{topic}, the job's file.
#
#   POST /auth                                              "auth"
#   POST /topic/ota/device/inform/{pk}/{dn}                 "inform"    version report
#   POST /topic/ota/device/progress/{pk}/{dn}               "progress"
#   POST /topic/sys/{pk}/{dn}/thing/ota/firmware/get        "check"     info.data = the job
#   POST /topic/{any other topic}                           "publish"
#   GET  /ota-files/{job}/{name}?Expires=&OSSAccessKeyId=&Signature=    "download" (RFC 7233)
#
# Answers are HTTP 200 {"code", "message", "info"?} with the page's codes and messages.
# /auth (the same page): Content-Type application/json and a Content-Length are required;
# sign = hex HMAC-md5|sha1(deviceSecret, every parameter but version, sign and signmethod sorted
# by name, as name+value), compared without regard to case; signmethod defaults to hmacmd5;
# timestamp (ms) is optional and must be within max_skew_s (15 minutes) of the emulator's clock;
# clientId has 1..64 characters. A token lives token_lifetime_s (48 h in the 2018 page) on the
# emulator's clock. A publish needs `password: {token}` (20002 without, 20003 unknown, 20001
# expired), Content-Type application/octet-stream, a Content-Length, no query string, a body of
# at most 128 KB (10001 otherwise), and a topic of this device (30001 otherwise).
#
# The OTA job (one, for the configured device): pending -> upgrading (the first progress) ->
# succeeded (ONLY an inform of the target version for the job's module) | failed (a progress
# step "-1".."-4"); cancelled from /_emu/task. Progress "100" alone is not success. A firmware
# get for the job's module answers the job in the push format (size, version, url, md5 when
# signMethod is Md5, sign, signMethod "Md5"|"SHA256", module unless "default", extData when not
# empty) while it is pending or upgrading, else {}.
#
# Choices where the sources are silent (also in tools/emulator.py's docstring):
#   - an OTA message the OTA service cannot use (bad JSON, no params, a step outside
#     "1".."100"/"-1".."-4", no job in progress, another module) is still a successful publish
#     (the HTTP channel only carries it); it is listed in the state's "ignored";
#   - an old or future timestamp is 20000 (the auth check fails), a malformed one 10001; a
#     wrong productKey/deviceName or sign is 20000; every /auth issues a new token and earlier
#     ones stay valid until their own end; reset forgets all tokens;
#   - info.data is a JSON object (data_as_text: a JSON string, the page's "byte[]");
#   - the file URL is signed like an OSS URL and expires url_lifetime_s (24 h, Aliyun's OTA
#     docs) after the firmware get that handed it out: then 403 with an OSS error document;
#   - rate_limit: at most that many /auth and publish requests per 60 s, then 40000.

import base64
import collections
import hashlib
import hmac
import json
import secrets
from urllib.parse import quote

from . import ranges
from .base import Emulator
from .records import FAULT_KINDS, ControlError

OK = 0
COMMON_ERROR = 10000
PARAM_ERROR = 10001
AUTH_CHECK = 20000
TOKEN_EXPIRED = 20001
TOKEN_NULL = 20002
TOKEN_CHECK = 20003
UPDATE_SESSION = 20004
PUBLISH_ERROR = 30001
TOO_MANY = 40000
MESSAGES = {
    OK: "success",
    COMMON_ERROR: "common error",
    PARAM_ERROR: "param error",
    AUTH_CHECK: "auth check error",
    TOKEN_EXPIRED: "token is expired",
    TOKEN_NULL: "token is null",
    TOKEN_CHECK: "check token error",
    UPDATE_SESSION: "update session error",
    PUBLISH_ERROR: "publish message error",
    TOO_MANY: "request too many",
}
MAX_BODY = 128 * 1024  # the page: 上行接口传输的数据大小限制为128k
MAX_CLIENT_ID = 64

PENDING = "pending"
UPGRADING = "upgrading"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = (PENDING, UPGRADING)
_STEPS = frozenset([str(n) for n in range(1, 101)] + ["-1", "-2", "-3", "-4"])
_HMACS = {"hmacmd5": hashlib.md5, "hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
_SIGN_METHODS = {"md5": "Md5", "sha256": "SHA256"}
_OSS_ID = "LTAIemuFotaOtaFiles"
_RATE_WINDOW_S = 60
_FIRST_MESSAGE_ID = 892687627916247040  # the page's example messageId


def content(fields):
    """The signed text: every field but version, sign and signmethod, sorted, name+value."""
    skip = ("version", "sign", "signmethod")
    return "".join(k + str(fields[k]) for k in sorted(fields) if k not in skip)


def sign(secret, fields, method="hmacsha1"):
    """The /auth sign, lowercase hex (as Aliyun's C SDK sends it)."""
    return hmac.new(secret.encode(), content(fields).encode(), _HMACS[method]).hexdigest()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Aliyun(Emulator):
    cloud = "aliyun"
    DEVICE_CONFIG = ("aliyun", (("product_key",) * 2, ("device_name",) * 2, ("device_secret",) * 2))
    CREDENTIALS = (
        ("product_key", "ZG1EvTEa7NN", "the device's productKey (a documented sample)"),
        ("device_name", "NlwaSPXsCpTQuh8FxBGH", "its deviceName (a documented sample)"),
        ("device_secret", "secret", "its deviceSecret"),
    )
    OPTIONS = {
        "module": "default",  # the job's module
        "sign_method": "Md5",  # the job's signMethod: Md5 or SHA256 (any case in)
        "ext_data": {},  # the job's extData (left out when empty)
        "state": PENDING,  # the job's first state
        "device_version": None,  # the version of the job's module the platform knows
        "token_lifetime_s": 48 * 3600,  # the 2018 page: 有效期48小时
        "max_skew_s": 900,  # the page: timestamp valid within 15 minutes
        "sign_methods": ["hmacmd5", "hmacsha1"],  # accepted /auth signmethods
        "url_lifetime_s": 24 * 3600,  # the file URL's life (Aliyun's OTA docs)
        "rate_limit": None,  # /auth + publishes per 60 s before 40000; None: no limit
        "data_as_text": False,  # info.data as a JSON string instead of an object
    }
    CLI_OPTIONS = (
        ("module", str, "the job's module (default: default)"),
        ("sign_method", str, "the job's signMethod: Md5 (default) or SHA256"),
        ("token_lifetime_s", int, "token life in seconds (default 172800: 48 h, as Aliyun's)"),
    )
    ENDPOINTS = ("auth", "inform", "progress", "check", "publish", "download")
    FAULT_KINDS = tuple(k for k in FAULT_KINDS if k != "error_body")
    TASK_STATES = (PENDING, UPGRADING, SUCCEEDED, FAILED, CANCELLED)

    def routes(self):
        dev = "{pk}/{dn}"
        return [
            ("POST", "/auth", self.auth, "auth"),
            ("POST", "/topic/ota/device/inform/" + dev, self.inform, "inform"),
            ("POST", "/topic/ota/device/progress/" + dev, self.progress, "progress"),
            ("POST", "/topic/sys/" + dev + "/thing/ota/firmware/get", self.firmware_get, "check"),
            ("POST", "/topic/{topic:.+}", self.publish, "publish"),
            ("GET", "/ota-files/{job}/{name}", self.download, "download"),
        ]

    def setup(self, image, opts):
        method = str(opts["sign_method"]).lower()
        if method not in _SIGN_METHODS:
            raise ControlError("sign_method must be Md5 or SHA256 (any case)")
        if opts["state"] not in self.TASK_STATES:
            raise ControlError("state must be one of %s" % ", ".join(self.TASK_STATES))
        if not isinstance(opts["ext_data"], dict):
            raise ControlError("ext_data must be an object")
        if not isinstance(opts["module"], str) or not opts["module"]:
            raise ControlError("module must be a non-empty string")
        methods = opts["sign_methods"]
        if not isinstance(methods, list) or not set(methods) <= set(_HMACS):
            raise ControlError("sign_methods: a list of %s" % ", ".join(sorted(_HMACS)))
        for name in ("token_lifetime_s", "max_skew_s", "url_lifetime_s"):
            if type(opts[name]) not in (int, float) or opts[name] < 0:
                raise ControlError("%s must be a number of seconds" % name)
        if opts["rate_limit"] is not None and (
            type(opts["rate_limit"]) is not int or opts["rate_limit"] < 1
        ):
            raise ControlError("rate_limit must be a positive integer or null")
        self.tokens = {}  # token -> {"client_id", "issued", "expires"}
        self.recent = collections.deque()  # times of /auth and publishes (rate_limit)
        self.message_id = _FIRST_MESSAGE_ID
        self.ignored = []  # OTA messages the OTA service could not use: [endpoint, why]
        self.device = {}
        if opts["device_version"] is not None:
            self.device[opts["module"]] = opts["device_version"]
        self.origin = None  # scheme://host of the last /auth or publish (for the state's push)
        self.oss_secret = secrets.token_bytes(16)
        self.job = None
        if image is not None:
            self.job = {
                "id": 100000 + secrets.randbelow(900000),
                "state": opts["state"],
                "module": opts["module"],
                "target": image.version,
                "sign_method": _SIGN_METHODS[method],
                "sign": image.md5 if method == "md5" else image.sha256,
                "size": image.size,
                "last_step": None,
                "steps": [],  # [step, desc] of every progress taken
                "downloads": 0,
            }

    def cloud_state(self):
        now = self.now()
        tokens = [
            dict(info, token=t, expired=now > info["expires"]) for t, info in self.tokens.items()
        ]
        push = None
        if self.job is not None and self.job["state"] in ACTIVE and self.origin is not None:
            push = {
                "code": "1000",
                "data": self._job_data(self.origin, False),
                "id": str(self.job["id"]),
                "message": "success",
            }
        return {
            "job": self.job,
            "device": dict(self.device),
            "tokens": tokens,
            "ignored": self.ignored,
            "push": push,
        }

    def set_task_state(self, state):
        if self.job is None:
            raise ControlError("there is no job (reset with an image first)")
        self.job["state"] = state

    def error_answer(self, code, message):
        return {"code": code, "message": MESSAGES.get(code, message)}

    def info(self):
        return dict(self.creds, module=self.opts["module"])

    async def answer(self, x, code, info=None):
        obj = {"code": code, "message": MESSAGES[code]}
        if info is not None:
            obj["info"] = info
        return await self.send_json(x, obj)

    # -- helpers

    def _message_id(self):
        self.message_id += 1
        return self.message_id

    def _rate_limited(self):
        limit = self.opts["rate_limit"]
        now = self.now()
        recent = self.recent
        while recent and recent[0] <= now - _RATE_WINDOW_S:
            recent.popleft()
        if limit is not None and len(recent) >= limit:
            return True
        recent.append(now)
        return False

    def _url_sign(self, path, expires):
        text = "GET\n\n\n%d\n%s" % (expires, path)
        return base64.b64encode(hmac.new(self.oss_secret, text.encode(), "sha1").digest()).decode()

    def _job_data(self, origin, wrong):
        job = self.job
        path = "/ota-files/%d/%s" % (job["id"], quote(self.image.name))
        expires = int(self.now()) + int(self.opts["url_lifetime_s"])
        url = "%s%s?Expires=%d&OSSAccessKeyId=%s&Signature=%s" % (
            origin,
            path,
            expires,
            _OSS_ID,
            quote(self._url_sign(path, expires), safe=""),
        )
        digest = job["sign"]
        if wrong:
            digest = digest[:-1] + ("0" if digest[-1] != "0" else "1")
        data = {"size": job["size"], "version": job["target"], "url": url}
        if job["sign_method"] == "Md5":
            data["md5"] = digest
        data["sign"] = digest
        data["signMethod"] = job["sign_method"]
        if job["module"] != "default":
            data["module"] = job["module"]
        if self.opts["ext_data"]:
            data["extData"] = dict(self.opts["ext_data"])
        return data

    def _ignore(self, x, why):
        self.ignored.append([x.endpoint, why])

    def _params(self, x):
        """The OTA message's params object, or None (recorded as ignored)."""
        body = x.json
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            self._ignore(x, "not a JSON object with params")
            return None
        msg_id = body.get("id")
        if not isinstance(msg_id, str) or not msg_id.isdigit() or int(msg_id) > 0xFFFFFFFF:
            self._ignore(x, "id must be a numeric string in 0..4294967295")
            return None
        return body["params"]

    def _publish_error(self, x):
        """The code a publish is refused with, or None (the page's checks, in this order)."""
        if self._rate_limited():
            return TOO_MANY
        token = x.header("password")
        if not token:
            return TOKEN_NULL
        info = self.tokens.get(token)
        if info is None:
            return TOKEN_CHECK
        if self.now() > info["expires"]:
            return TOKEN_EXPIRED
        if x.request.query_string:
            return PARAM_ERROR  # the page: no ?query_String=xxx
        if (
            "Content-Type" not in x.request.headers
            or x.request.content_type != "application/octet-stream"
        ):
            return PARAM_ERROR
        if "Content-Length" not in x.request.headers or len(x.body) > MAX_BODY:
            return PARAM_ERROR
        return None

    def _own_topic(self, x):
        """True for a topic of this device: pk and dn in the OTA paths, or next to each other
        in any other topic (/{pk}/{dn}/user/..., /sys/{pk}/{dn}/...)."""
        pk, dn = self.creds["product_key"], self.creds["device_name"]
        info = x.request.match_info
        if "topic" not in info:
            return info["pk"] == pk and info["dn"] == dn
        parts = info["topic"].split("/")
        return any(parts[i : i + 2] == [pk, dn] for i in range(len(parts) - 1))

    async def _gate(self, x):
        """Common publish checks: -> an error answer to send, or None."""
        self.origin = "%s://%s" % (x.request.scheme, x.request.host)
        code = self._publish_error(x)
        if code is None and not self._own_topic(x):
            code = PUBLISH_ERROR
        if code is not None:
            return await self.answer(x, code)
        return None

    async def _published(self, x, data=None, has_data=False):
        info = {"messageId": self._message_id()}
        if has_data:
            info["data"] = json.dumps(data) if self.opts["data_as_text"] else data
        return await self.answer(x, OK, info)

    # -- endpoints

    async def auth(self, x):
        self.origin = "%s://%s" % (x.request.scheme, x.request.host)
        if self._rate_limited():
            return await self.answer(x, TOO_MANY)
        if x.request.content_type != "application/json":
            return await self.answer(x, PARAM_ERROR)
        if "Content-Length" not in x.request.headers:
            return await self.answer(x, PARAM_ERROR)
        body = x.json
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return await self.answer(x, PARAM_ERROR)
        if any(not body.get(k) for k in ("productKey", "deviceName", "clientId", "sign")):
            return await self.answer(x, PARAM_ERROR)
        if len(body["clientId"]) > MAX_CLIENT_ID:
            return await self.answer(x, PARAM_ERROR)
        method = body.get("signmethod", "hmacmd5")
        if method not in self.opts["sign_methods"]:
            return await self.answer(x, PARAM_ERROR)
        stamp = body.get("timestamp")
        if stamp is not None and (not stamp.isascii() or not stamp.isdigit()):
            return await self.answer(x, PARAM_ERROR)
        if (
            body["productKey"] != self.creds["product_key"]
            or body["deviceName"] != self.creds["device_name"]
        ):
            return await self.answer(x, AUTH_CHECK)
        expected = sign(self.creds["device_secret"], body, method)
        if not hmac.compare_digest(expected.encode(), body["sign"].lower().encode()):
            return await self.answer(x, AUTH_CHECK)
        now = self.now()
        if stamp is not None and abs(now * 1000 - int(stamp)) > self.opts["max_skew_s"] * 1000:
            return await self.answer(x, AUTH_CHECK)
        expires = now + self.opts["token_lifetime_s"]
        header = _b64url(b'{"type":"JWT","alg":"hmacsha1"}')
        claims = {"expire": int(expires * 1000), "token": secrets.token_hex(16)}
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self.oss_secret, (header + "." + payload).encode(), "sha1").digest()
        token = "%s.%s.%s" % (header, payload, _b64url(mac))
        self.tokens[token] = {"client_id": body["clientId"], "issued": now, "expires": expires}
        return await self.answer(x, OK, {"token": token})

    async def inform(self, x):
        refused = await self._gate(x)
        if refused is not None:
            return refused
        params = self._params(x)
        if params is not None:
            version = params.get("version")
            module = params.get("module") or "default"
            if not isinstance(version, str) or not version or not isinstance(module, str):
                self._ignore(x, "params.version must be a non-empty string")
            else:
                self.device[module] = version
                job = self.job
                if (
                    job is not None
                    and job["state"] in ACTIVE
                    and job["module"] == module
                    and job["target"] == version
                ):
                    job["state"] = SUCCEEDED
        return await self._published(x)

    async def progress(self, x):
        refused = await self._gate(x)
        if refused is not None:
            return refused
        params = self._params(x)
        if params is not None:
            self._progress(x, params)
        return await self._published(x)

    def _progress(self, x, params):
        step = params.get("step")
        desc = params.get("desc", "")
        module = params.get("module") or "default"
        job = self.job
        if not isinstance(step, str) or step not in _STEPS:
            return self._ignore(x, 'step must be a string "1".."100" or "-1".."-4"')
        if not isinstance(desc, str):
            return self._ignore(x, "desc must be a string")
        if job is None or job["state"] not in ACTIVE:
            return self._ignore(x, "no job in progress")
        if module != job["module"]:
            return self._ignore(x, "module %s has no job" % module)
        job["steps"].append([step, desc])
        job["last_step"] = step
        job["state"] = FAILED if step.startswith("-") else UPGRADING
        return None

    async def firmware_get(self, x):
        refused = await self._gate(x)
        if refused is not None:
            return refused
        body = x.json
        params = self._params(x)
        data = {}
        if params is not None:
            module = params.get("module") or "default"
            job = self.job
            if body.get("method") != "thing.ota.firmware.get":
                self._ignore(x, "method must be thing.ota.firmware.get")
            elif job is not None and job["state"] in ACTIVE and job["module"] == module:
                wrong = x.fault is not None and x.fault.kind == "wrong_digest"
                data = self._job_data(self.origin, wrong)
        return await self._published(x, data, True)

    async def publish(self, x):
        refused = await self._gate(x)
        if refused is not None:
            return refused
        return await self._published(x)

    async def download(self, x):
        job, image = self.job, self.image
        info = x.request.match_info
        q = x.query
        if job is None or info["job"] != str(job["id"]) or info["name"] != image.name:
            return await _oss_error(self, x, 404, "NoSuchKey", "The specified key does not exist.")
        path = "/ota-files/%s/%s" % (info["job"], quote(info["name"]))
        expires = q.get("Expires", "")
        signature = q.get("Signature", "")
        if (
            not expires.isdigit()
            or q.get("OSSAccessKeyId") != _OSS_ID
            or not hmac.compare_digest(
                self._url_sign(path, int(expires)).encode(), signature.encode()
            )
        ):
            why = "The request signature we calculated does not match the signature you provided."
            return await _oss_error(self, x, 403, "SignatureDoesNotMatch", why)
        if self.now() > int(expires):
            return await _oss_error(self, x, 403, "AccessDenied", "Request has expired.")
        rng = ranges.rfc7233(x.header("Range"), image.size)
        if rng == ranges.UNSATISFIABLE:
            headers = {"Content-Range": "bytes */%d" % image.size}
            return await self.send(x, 416, b"", "text/plain", headers)
        job["downloads"] += 1  # answers that carry bytes of the file
        etag = '"%s"' % image.md5.upper()
        return await self.send_range(x, image.data, rng, {"ETag": etag, "Accept-Ranges": "bytes"})


async def _oss_error(emu, x, status, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<RequestId>%s</RequestId></Error>\n" % (code, message, secrets.token_hex(12).upper())
    )
    return await emu.send(x, status, body.encode(), "application/xml")
