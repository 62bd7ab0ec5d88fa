# tools/emu/onenet_fuse.py: OneNET's new-platform ("fuse") OTA API, /fuse-ota/{pro_id}/{dev}/.
#
# Source: public device clients (endpoints, a captured check answer, Ota-Errno) with the token
# (versions 2018-10-31 and 2022-05-01; res products/{pid} or .../devices/{dev}). Answers are
# {"code", "msg", "data"?, "request_id"} with HTTP 200; downloads carry `Ota-Errno` always.
#
# Choices where the sources are silent (also in tools/emulator.py's docstring):
#   - codes reuse the legacy errno numbers (the one observed error, {"code":20,"msg":"task
#     finish"}, is legacy errno 20): 1 auth failed or unknown product/device, 2 bad params,
#     4 unknown tid, 11 no task (answered without data), 17 invalid state, 22 cancelled, 27 bad
#     version;
#   - no token check step exists, so the download or a step 0..100 in pending starts the task
#     (undocumented); tasks do not expire;
#   - a refused download is HTTP 200 with Ota-Errno != 0 and a JSON body {"code", "msg"}:
#     6 auth failed, 1 unknown device, 2 unknown tid, 5 task over (the meanings one client lists).

import uuid

from . import ranges
from .onenet_common import (
    ACTIVE,
    AUTH,
    BAD_PARAMS,
    BAD_VERSION,
    CANCELLED_STATE,
    COMPLETED,
    DIFF_MISMATCH,
    DOWNLOADING,
    FAILED,
    NO_TASK,
    OK,
    PENDING,
    TOKEN_MISMATCH,
    UPGRADING,
    OneNetBase,
    valid_version,
)

_STATUS = {PENDING: 1, DOWNLOADING: 2, UPGRADING: 3, COMPLETED: 4, FAILED: 5, CANCELLED_STATE: 6}
# Ota-Errno (from one public client's comment)
_ERRNO_DEVICE = 1
_ERRNO_FILE = 2
_ERRNO_EXPIRED = 5
_ERRNO_AUTH = 6


class OneNetFuse(OneNetBase):
    cloud = "onenet-fuse"
    DEVICE_CONFIG = (
        "onenet",
        (("product_id", "product_id"), ("device_name", "device_name"), ("key", "device_key")),
    )
    OPTIONS = dict(OneNetBase.COMMON_OPTIONS, token_versions=["2018-10-31", "2022-05-01"])
    ENDPOINTS = ("version", "check", "task_check", "download", "progress")
    TASK_STATES = tuple(_STATUS)  # fuse's status numbers have no "paused"
    LENIENT_PENDING = True

    def routes(self):
        p = "/fuse-ota/{pid}/{dev}/"
        return [
            ("POST", p + "version", self.version_post, "version"),
            ("GET", p + "version", self.version_get, "version"),
            ("GET", p + "check", self.check, "check"),
            ("GET", p + "{tid}/check", self.task_check, "task_check"),
            ("GET", p + "{tid}/download", self.download, "download"),
            ("POST", p + "{tid}/status", self.status, "progress"),
        ]

    def error_answer(self, code, message):
        return {"code": code, "msg": message, "request_id": uuid.uuid4().hex}

    async def answer(self, x, code, msg="succ", data=None):
        obj = {"code": code, "msg": msg}
        if data is not None:
            obj["data"] = data
        obj["request_id"] = uuid.uuid4().hex
        return await self.send_json(x, obj)

    def _device_known(self, x):
        info = x.request.match_info
        return info["pid"] == self.creds["product_id"] and info["dev"] == self.creds["device_name"]

    def _gate(self, x):
        if not self._device_known(x):
            return AUTH, "device not exist"
        why = self.auth_error(x)
        if why is not None:
            return AUTH, "auth failed: " + why
        return None

    def _task(self, x):
        """The task named by {tid} in the path, or None."""
        task = self.task
        if task is None or x.request.match_info["tid"] != str(task.tid):
            return None
        return task

    # -- endpoints

    async def check(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        type_, version = x.query.get("type"), x.query.get("version")
        if type_ not in ("1", "2") or not version:
            return await self.answer(x, BAD_PARAMS, "type (1|2) and version required")
        if not valid_version(version):
            return await self.answer(x, BAD_VERSION, "invalid version")
        task = self.task_for(int(type_))
        if task is None:
            return await self.answer(x, NO_TASK, "no task")
        base = self.opts["diff_from"]
        if task.package_type == 2 and base is not None and version != base:
            task.state = FAILED
            return await self.answer(x, DIFF_MISMATCH, "version mismatch for diff package")
        data = {
            "target": task.image.version,
            "tid": task.tid,
            "size": task.image.size,
            "md5": self.md5_for(x, task),
            "status": _STATUS[task.state],
            "type": task.package_type,
        }
        return await self.answer(x, OK, data=data)

    async def task_check(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        task = self._task(x)
        if task is None:
            return await self.answer(x, TOKEN_MISMATCH, "task not found")
        return await self.answer(x, OK, data={"status": _STATUS[task.state]})

    async def download(self, x):
        fault = x.fault
        if fault is not None and fault.kind == "error_body":
            return await self._refuse(x, fault.code, "injected fault")
        if not self._device_known(x):
            return await self._refuse(x, _ERRNO_DEVICE, "device not exist")
        why = self.auth_error(x)
        if why is not None:
            return await self._refuse(x, _ERRNO_AUTH, "auth failed: " + why)
        task = self._task(x)
        if task is None:
            return await self._refuse(x, _ERRNO_FILE, "file not exist")
        if task.state not in ACTIVE:
            return await self._refuse(x, _ERRNO_EXPIRED, "task expired")
        if task.state == PENDING:
            task.state = DOWNLOADING
        image = task.image
        rng = ranges.onenet(x.header("Range"), image.size)
        headers = {
            "Ota-Errno": "0",
            "Content-Disposition": 'attachment; filename="%s"' % image.name,
        }
        ctype = "application/octet-stream;charset=UTF-8"  # as a public client captured it
        return await self.send_range(x, image.data, rng, headers, ctype)

    async def _refuse(self, x, errno, msg):
        # HTTP 200 even so: clients must read Ota-Errno (public clients say so)
        obj = {"code": errno, "msg": msg}
        return await self.send_json(x, obj, headers={"Ota-Errno": str(errno)})

    async def status(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        task = self._task(x)
        if task is None:
            return await self.answer(x, TOKEN_MISMATCH, "task not found")
        step = x.json.get("step") if isinstance(x.json, dict) else None
        if type(step) is not int:
            return await self.answer(x, BAD_PARAMS, 'body must be {"step": int}')
        return await self.answer(x, *task.step(step, self.device))
