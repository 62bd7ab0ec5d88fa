# tools/emu/onenet_common.py: what both OneNET APIs share: the device, its credentials, the
# token check, the version rule and the task state machine (OneNET's "API调试-网络调试助手" 说明
# and its south-API pages). The legacy API is in onenet.py, the fuse API in onenet_fuse.py.
#
# Task states: pending -> downloading -> upgrading -> completed | failed; also cancelled and
# paused (set from /_emu/task). Progress `step`:
#   0..100   only in downloading, else "invalid state"; 100 -> upgrading        (说明 1-3)
#   101      -> upgrading; 102..107 -> failed; 201 -> completed (device version := target);
#   202..208 -> failed. Codes > 100 in pending, downloading, upgrading only; in upgrading only
#   2xx; nothing in cancelled, failed, completed, paused.                      (说明 4)

import re
import secrets
import string

from . import onenet_token
from .base import Emulator
from .records import ControlError

# errno / code numbers (the south-API pages' tables); the fuse API reuses them (its one observed
# error, {"code":20,"msg":"task finish"}, is the legacy errno 20)
OK = 0
AUTH = 1
BAD_PARAMS = 2
TOKEN_MISMATCH = 4
INTERNAL = 7
PLATFORM_MISMATCH = 8
DIFF_MISMATCH = 9
NO_TASK = 11
EXPIRED = 12
INVALID_STATE = 17
FINISHED = 20
INVALID_OP = 21
CANCELLED = 22
BAD_RESULT = 24
BAD_VERSION = 27

PENDING = "pending"
DOWNLOADING = "downloading"
UPGRADING = "upgrading"
COMPLETED = "completed"
FAILED = "failed"
PAUSED = "paused"
CANCELLED_STATE = "cancelled"
ACTIVE = (PENDING, DOWNLOADING, UPGRADING)
DONE = (COMPLETED, FAILED)

SAMPLE_KEY = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="  # the docs' sample access key
_VERSION = re.compile(r"[a-zA-Z0-9_\-.]{1,20}")  # the south-API pages: <= 20 chars of these
_ALNUM = string.ascii_letters + string.digits


def valid_version(text):
    return isinstance(text, str) and _VERSION.fullmatch(text) is not None


class Task:
    """The one upgrade task of the configured device."""

    def __init__(self, image, opts, now, lenient):
        self.image = image
        self.state = opts["state"]
        self.type = opts["type"]
        self.package_type = opts["package_type"]
        self.lenient = lenient  # fuse: a step in pending starts the download (no token check)
        self.tid = 1_000_000 + secrets.randbelow(9_000_000)
        self.old_tokens = []
        self.token = None
        self.lifetime = opts["token_lifetime_s"]
        self.issue_token(now)
        self.last_step = None
        self.last_result = None
        self.steps = []  # every step/result reported: [code, errno answered]

    def issue_token(self, now):
        if self.token is not None:
            self.old_tokens.append(self.token)
        self.token = "ota_" + "".join(secrets.choice(_ALNUM) for _ in range(20))
        self.expires = int(now) + self.lifetime

    def expired(self, now):
        return now > self.expires

    def step(self, code, device):
        """Apply a progress step or result code; -> (errno, message)."""
        errno, message = self._step(code, device)
        self.steps.append([code, errno])
        return errno, message

    def _step(self, code, device):
        state = self.state
        if 0 <= code <= 100:
            if state == PENDING and self.lenient:
                state = self.state = DOWNLOADING
            if state != DOWNLOADING:
                return INVALID_STATE, "invalid state"
            self.last_step = code
            if code == 100:
                self.state = UPGRADING
            return OK, "succ"
        if not (101 <= code <= 107 or 201 <= code <= 208):
            return BAD_PARAMS, "unknown status code"
        if state in DONE:
            return FINISHED, "task finish"
        if state == CANCELLED_STATE:
            return CANCELLED, "task cancelled"
        if state == PAUSED or (state == UPGRADING and code < 200):
            return INVALID_STATE, "invalid state"
        self.last_result = code
        if code == 201:
            self.complete(device)
        elif code == 101:
            self.state = UPGRADING
        else:
            self.state = FAILED
        return OK, "succ"

    def complete(self, device):
        self.state = COMPLETED
        device[self.version_field()] = self.image.version

    def version_field(self):
        return "f_version" if self.type == 1 else "s_version"

    def describe(self, now):
        return {
            "state": self.state,
            "type": self.type,
            "package_type": self.package_type,
            "target": self.image.version,
            "size": self.image.size,
            "md5": self.image.md5,
            "token": self.token,
            "token_expires": self.expires,
            "token_expired": self.expired(now),
            "old_tokens": self.old_tokens,
            "tid": self.tid,
            "last_step": self.last_step,
            "last_result": self.last_result,
            "steps": self.steps,
        }


class OneNetBase(Emulator):
    """The device, its keys, the token check and the task, for both OneNET APIs."""

    CREDENTIALS = (
        ("product_id", "123123", "product id (res products/{pid})"),
        ("key", SAMPLE_KEY, "product access key, base64 (OneNET's documented sample key)"),
        ("device_id", "522747162", "numeric device id (legacy API)"),
        ("device_name", "mydev", "device name (fuse paths, res products/{pid}/devices/{name})"),
        (
            "device_key",
            "iLItnGVvZyXkvDxWDTDnG1x4qENBpu6/gbQ7LDx+XAo=",
            "device key, base64 (onenet.key for onenet-fuse)",
        ),
    )
    COMMON_OPTIONS = {
        "type": 1,  # task type: 1 FOTA (module firmware, f_version), 2 SOTA (app, s_version)
        "package_type": 1,  # 1 full, 2 diff
        "diff_from": None,  # a diff package's base version (check errno 9 otherwise); None: any
        "state": PENDING,  # the task's first state
        "f_version": None,  # the device's versions as the platform knows them
        "s_version": None,
        "product_token": True,  # accept res products/{pid} (public fuse clients use it)
        "token_lifetime_s": 2 * 24 * 3600,  # the task token's life (check errno 0: 2 days)
    }
    CLI_OPTIONS = (("type", int, "task type: 1 FOTA (f_version), 2 SOTA (s_version)"),)
    TASK_STATES = (PENDING, DOWNLOADING, UPGRADING, COMPLETED, FAILED, CANCELLED_STATE, PAUSED)
    LENIENT_PENDING = False

    def setup(self, image, opts):
        if opts["type"] not in (1, 2) or opts["package_type"] not in (1, 2):
            raise ControlError("type and package_type must be 1 or 2")
        if opts["state"] not in self.TASK_STATES:
            raise ControlError("state must be one of %s" % ", ".join(self.TASK_STATES))
        if image is not None and not valid_version(image.version):
            raise ControlError("OneNET versions are 1..20 of [a-zA-Z0-9_-.]: %r" % image.version)
        self.device = {k: opts[k] for k in ("f_version", "s_version") if opts[k] is not None}
        self.task = Task(image, opts, self.now(), self.LENIENT_PENDING) if image else None

    def cloud_state(self):
        return {
            "task": self.task.describe(self.now()) if self.task else None,
            "device": dict(self.device),
        }

    def set_task_state(self, state):
        if self.task is None:
            raise ControlError("there is no task (reset with an image first)")
        self.task.state = state

    def keys(self):
        pid = self.creds["product_id"]
        keys = {
            "products/%s/devices/%s" % (pid, self.creds["device_name"]): self.creds["device_key"]
        }
        if self.opts["product_token"]:
            keys["products/%s" % pid] = self.creds["key"]
        return keys

    def auth_error(self, x):
        """None when the Authorization header is good, else why not."""
        versions = self.opts["token_versions"]
        try:
            onenet_token.verify(x.header("Authorization"), self.keys(), self.now(), versions)
        except onenet_token.TokenError as exc:
            return str(exc)
        return None

    # The version endpoints are the same in both APIs; answer() and _gate() are each API's own
    # envelope and auth check.

    async def version_post(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        code = self.report_versions(x.json)
        msg = {OK: "succ", BAD_PARAMS: "bad params", BAD_VERSION: "invalid version"}[code]
        return await self.answer(x, code, msg)

    async def version_get(self, x):
        failed = self._gate(x)
        if failed:
            return await self.answer(x, *failed)
        return await self.answer(x, OK, data=dict(self.device))

    def report_versions(self, body):
        """A version report {"f_version", "s_version"}: -> errno. Reporting the task's target
        marks the task completed (OneNET's 上报版本 page, 说明 3)."""
        if not isinstance(body, dict):
            return BAD_PARAMS
        fields = {k: body[k] for k in ("f_version", "s_version") if k in body}
        if not all(valid_version(v) for v in fields.values()):
            return BAD_VERSION
        self.device.update(fields)
        task = self.task
        if task is not None and task.state in ACTIVE:
            if fields.get(task.version_field()) == task.image.version:
                task.complete(self.device)
        return OK

    def task_for(self, type_):
        """The task a check of this type finds, or None (check errno 11)."""
        task = self.task
        if task is None or task.type != type_ or task.state not in ACTIVE:
            return None
        return task

    def md5_for(self, x, task):
        if x.fault is not None and x.fault.kind == "wrong_digest":
            return "%032x" % (int(task.image.md5, 16) ^ 1)  # the last hex digit changed
        return task.image.md5
