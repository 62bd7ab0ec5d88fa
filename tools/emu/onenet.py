# tools/emu/onenet.py: the legacy OneNET OTA API (ota.heclouds.com, paths /ota/...).
#
# Sources: OneNET's "API调试-网络调试助手" page (version report, check, Range rules, progress and
# result codes), its OTA south-API pages (endpoints, errno tables) and token page. Answers are
# {"errno": int, "error": "succ" | message, "data": {...}} with HTTP 200, whatever the errno.
# The device is addressed by ?dev_id=; every endpoint but the download checks Authorization
# (errno 1 when it fails, or when dev_id names another device; errno 2 when dev_id is absent).
#
# Choices where the sources are silent (also in tools/emulator.py's docstring):
#   - the download moves a pending task to downloading, like the optional token check does;
#   - the task token lives token_lifetime_s (2 days) from the check that issued it; a check
#     after that issues a new one; old tokens answer errno 12 (token check, progress);
#   - a download token that is unknown, expired or whose task is over gets the one-byte body "3"
#     (invalid token), close-delimited; "1" and "2" come only from the error_body fault;
#   - /ota/south/report answers errno 1 for an unknown token and 21 where progress says 17.

from . import ranges
from .onenet_common import (
    ACTIVE,
    AUTH,
    BAD_PARAMS,
    BAD_RESULT,
    BAD_VERSION,
    CANCELLED,
    CANCELLED_STATE,
    DIFF_MISMATCH,
    DONE,
    DOWNLOADING,
    EXPIRED,
    FAILED,
    FINISHED,
    INVALID_OP,
    INVALID_STATE,
    NO_TASK,
    OK,
    PENDING,
    PLATFORM_MISMATCH,
    TOKEN_MISMATCH,
    OneNetBase,
    valid_version,
)

_ERROR_BODIES = {1: b"1", 2: b"2", 3: b"3"}  # resource not found, size mismatch, invalid token


class OneNet(OneNetBase):
    cloud = "onenet"
    DEVICE_CONFIG = (
        "onenet",
        (("product_id", "product_id"), ("device_id", "device_id"), ("key", "key")),
    )
    OPTIONS = dict(
        OneNetBase.COMMON_OPTIONS,
        manuf=101,  # the task's platform: ESP32 in OneNET's table (101/10101)
        model=10101,
        signal=0,  # check data: thresholds and retry policy the device enforces itself
        power=0,
        retry=3,
        interval=10,
        token_versions=["2018-10-31"],  # the legacy docs' token version
    )
    CLI_OPTIONS = OneNetBase.CLI_OPTIONS + (
        ("manuf", int, "the task's manufacturer code (101 = ESP32)"),
        ("model", int, "the task's model code (10101 = ESP32)"),
    )
    ENDPOINTS = ("version", "check", "token_check", "download", "progress", "report", "tasking")

    def routes(self):
        p = "/ota/south/"
        return [
            ("POST", "/ota/device/version", self.version_post, "version"),
            ("GET", "/ota/device/version", self.version_get, "version"),
            ("GET", p + "check", self.check, "check"),
            ("GET", p + "download/{token}/check", self.token_check, "token_check"),
            ("GET", p + "download/{token}", self.download, "download"),
            ("POST", p + "device/download/{token}/progress", self.progress, "progress"),
            ("POST", p + "report", self.report, "report"),
            ("GET", p + "tasking", self.tasking, "tasking"),
        ]

    def error_answer(self, code, message):
        return {"errno": code, "error": message}

    async def answer(self, x, errno, message="succ", data=None):
        obj = {"errno": errno, "error": message}
        if data is not None:
            obj["data"] = data
        return await self.send_json(x, obj)

    def _gate(self, x):
        """Authorization and dev_id: -> (errno, message) of the failure, or None."""
        why = self.auth_error(x)
        if why is not None:
            return AUTH, "auth failed: " + why
        dev_id = x.query.get("dev_id")
        if not dev_id:
            return BAD_PARAMS, "dev_id is required"
        if dev_id != self.creds["device_id"]:
            return AUTH, "device not exist"
        return None

    def _task_data(self, x, task, cdn):
        data = {
            "target": task.image.version,
            "token": task.token,
            "size": task.image.size,
            "md5": self.md5_for(x, task),
            "signal": self.opts["signal"],
            "power": self.opts["power"],
            "retry": self.opts["retry"],
            "interval": self.opts["interval"],
            "type": task.package_type,
        }
        if cdn:
            data["ipPort"] = x.request.host  # the "CDN" is this server
        return data

    def _token_task(self, token):
        """-> (task, errno): errno 0 for the live token, 12 for an expired or replaced one."""
        task = self.task
        if task is None:
            return None, TOKEN_MISMATCH
        if token == task.token:
            return task, EXPIRED if task.expired(self.now()) else OK
        if token in task.old_tokens:
            return task, EXPIRED
        return None, TOKEN_MISMATCH

    # -- endpoints

    async def check(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        q = x.query
        if any(not q.get(k) for k in ("manuf", "model", "type", "version", "cdn")):
            return await self.answer(x, BAD_PARAMS, "manuf, model, type, version, cdn required")
        if q["type"] not in ("1", "2") or q["cdn"] not in ("true", "false"):
            return await self.answer(x, BAD_PARAMS, "type must be 1|2, cdn true|false")
        if not q["manuf"].isdigit() or not q["model"].isdigit():
            return await self.answer(x, BAD_PARAMS, "manuf and model are numbers")
        if not valid_version(q["version"]):
            return await self.answer(x, BAD_VERSION, "invalid version")
        task = self.task_for(int(q["type"]))
        if task is None:
            return await self.answer(x, NO_TASK, "no task")
        if (int(q["manuf"]), int(q["model"])) != (self.opts["manuf"], self.opts["model"]):
            task.state = FAILED
            return await self.answer(x, PLATFORM_MISMATCH, "manuf or model mismatch")
        base = self.opts["diff_from"]
        if task.package_type == 2 and base is not None and q["version"] != base:
            task.state = FAILED
            return await self.answer(x, DIFF_MISMATCH, "version mismatch for diff package")
        if task.expired(self.now()):
            task.issue_token(self.now())
        return await self.answer(x, OK, data=self._task_data(x, task, q["cdn"] == "true"))

    async def token_check(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        task, errno = self._token_task(x.request.match_info["token"])
        if errno == TOKEN_MISMATCH:
            return await self.answer(x, errno, "token and dev_id mismatch")
        if errno == EXPIRED:
            return await self.answer(x, errno, "token expired")
        if task.state in DONE:
            return await self.answer(x, FINISHED, "task finish")
        if task.state == CANCELLED_STATE:
            return await self.answer(x, CANCELLED, "task cancelled")
        if task.state not in (PENDING, DOWNLOADING):
            return await self.answer(x, INVALID_STATE, "invalid state")
        task.state = DOWNLOADING
        return await self.answer(x, OK)

    async def download(self, x):
        # No Authorization: the token in the path is the credential (OneNET's download examples).
        fault = x.fault
        if fault is not None and fault.kind == "error_body":
            body = _ERROR_BODIES.get(fault.code, b"%d" % fault.code)
            return await self.send_close_delimited(x, 200, body, "text/plain")
        task, errno = self._token_task(x.request.match_info["token"])
        if errno != OK or task.state not in ACTIVE:
            return await self.send_close_delimited(x, 200, _ERROR_BODIES[3], "text/plain")
        if task.state == PENDING:
            task.state = DOWNLOADING
        image = task.image
        rng = ranges.onenet(x.header("Range"), image.size)
        disposition = 'attachment; filename="%s"' % image.name
        return await self.send_range(x, image.data, rng, {"Content-Disposition": disposition})

    async def progress(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        task, errno = self._token_task(x.request.match_info["token"])
        if errno == TOKEN_MISMATCH:
            return await self.answer(x, errno, "token and dev_id mismatch")
        if errno == EXPIRED:
            return await self.answer(x, errno, "token expired")
        step = x.json.get("step") if isinstance(x.json, dict) else None
        if type(step) is not int:
            return await self.answer(x, BAD_PARAMS, 'body must be {"step": int}')
        return await self.answer(x, *task.step(step, self.device))

    async def report(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        task, errno = self._token_task(x.query.get("token", ""))
        if errno != OK:
            return await self.answer(x, AUTH, "token auth failed")
        result = x.json.get("result") if isinstance(x.json, dict) else None
        if type(result) is not int:
            return await self.answer(x, BAD_RESULT, 'body must be {"result": int}')
        if result <= 100:
            return await self.answer(x, BAD_PARAMS, "unknown status code")
        errno, message = task.step(result, self.device)
        if errno == INVALID_STATE:
            errno, message = INVALID_OP, "invalid operation"
        return await self.answer(x, errno, message)

    async def tasking(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        type_ = x.query.get("type")
        if type_ not in ("1", "2"):
            return await self.answer(x, BAD_PARAMS, "type must be 1 or 2")
        task = self.task_for(int(type_))
        if task is None:
            return await self.answer(x, TOKEN_MISMATCH, "no valid token")
        if task.expired(self.now()):
            return await self.answer(x, EXPIRED, "token expired")
        cdn = x.query.get("cdn") == "true"
        return await self.answer(x, OK, data=self._task_data(x, task, cdn))
