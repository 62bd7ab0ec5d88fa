# tools/emu/mxchip_admin.py: the MXCHIP emulator's management API, the calls a user (or a test)
# makes to publish firmware: an oss token, the upload it signs, and the files of a product
# (create, list, get, update, delete). The device API and the route table are in mxchip.py,
# whose Mxchip class takes these handlers from MxchipAdmin; the choices made where the cloud's
# API is silent are listed there.
#
# The answer codes and the file records' values are shared by both APIs and live here, so that
# mxchip.py imports this module and never the reverse.

import base64
import datetime
import hashlib
import hmac
import json
import secrets
from urllib.parse import quote

OK = 0
PARAM_ERROR = 10000
NO_SUCH_TASK = 10500
TASK_STATE = 10501

MCU = 0
WIFI = 1
TEST = 0
ONLINE = 1
INVALID = 2
PAGE_SIZE = 10
_OSS_ID = "LTAIemuFotaOssKey"
_OSS_DIR = "ota/"
OSS_LIFE_S = 300
_MAX_UPLOAD = 64 * 1024 * 1024

PUBLISHED = "published"
OFFERED = "offered"
DOWNLOADING = "downloading"
SUCCEEDED = "succeeded"


def iso_time(when):
    dt = datetime.datetime.fromtimestamp(int(when), datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def _b64(data):
    return base64.b64encode(data).decode()


class MxchipAdmin:
    """The management API's handlers, mixed into Mxchip (they use its records, gate and
    writers)."""

    def _file(self, x):
        """The live file named by {fid}, or None."""
        fid = x.request.match_info["fid"]
        if not fid.isdigit():
            return None
        for f in self._live():
            if f["id"] == int(fid):
                return f
        return None

    def _shown(self, x, record):
        out = dict(record)
        out["file_url"] = self._url(x, record["file_url"])
        return out

    def _fields(self, body, required):
        """Validated file fields -> (dict, None) or (None, error message)."""
        missing = [k for k in required if body.get(k) in (None, "")]
        if missing:
            return None, "missing parameter(s): %s" % ", ".join(missing)
        out = {}
        for name in ("file_name", "file_url", "md5", "version", "description", "customize"):
            if name in body:
                if not isinstance(body[name], str):
                    return None, "%s must be a string" % name
                out[name] = body[name]
        if "size" in body:
            size = body["size"]
            if isinstance(size, bool) or not isinstance(size, (str, int)):
                return None, "size must be a string"
            out["size"] = str(size)
        url = out.get("file_url")
        if url is not None and not url.startswith(("http://", "https://", "/")):
            return None, "file_url must be an http(s) URL"
        if "mac_range" in body:
            macs = body["mac_range"]
            if macs is not None and (
                not isinstance(macs, list) or not all(isinstance(m, str) for m in macs)
            ):
                return None, "mac_range must be a list of strings"
            out["mac_range"] = macs
        return out, None

    def _version_taken(self, ota_type, version, but=None):
        return any(
            f["ota_type"] == ota_type and f["version"] == version and f is not but
            for f in self._live()
        )

    async def oss_token(self, x):
        failed = self._gate(x)
        if failed:
            return await self.fail(x, *failed)
        expire = int(self.now()) + self.opts["oss_lifetime_s"]
        policy = {
            "expiration": iso_time(expire) + ".000Z",
            "conditions": [
                ["content-length-range", 0, _MAX_UPLOAD],
                ["starts-with", "$key", _OSS_DIR],
            ],
        }
        policy_b64 = _b64(json.dumps(policy, separators=(",", ":")).encode())
        base = "%s://%s" % (x.request.scheme, x.request.host)
        callback = {
            "callbackUrl": base + "/oss_callback/",
            "callbackBody": "filename=${object}&size=${size}&md5=${etag}",
            "callbackBodyType": "application/x-www-form-urlencoded",
        }
        data = {
            "accessid": _OSS_ID,
            "host": base + "/files",
            "policy": policy_b64,
            "signature": self._oss_sign(policy_b64),
            "expire": expire,
            "dir": _OSS_DIR,
            "callback": _b64(json.dumps(callback, separators=(",", ":")).encode()),
        }
        return await self.answer(x, OK, "oss token", data)

    def _oss_sign(self, policy_b64):
        key = ("oss-secret-" + self.creds["token"]).encode()
        return _b64(hmac.new(key, policy_b64.encode(), hashlib.sha1).digest())

    async def create(self, x):
        failed = self._gate(x, product=True)
        if failed:
            return await self.fail(x, *failed)
        body = self._body(x)
        if body is None:
            return await self.answer(x, PARAM_ERROR, "the body must be JSON or a form")
        fields, why = self._fields(body, ("file_name", "file_url", "md5", "size", "version"))
        if why:
            return await self.answer(x, PARAM_ERROR, why)
        ota_type = body.get("ug_type", MCU)  # the API notes: 0 mcu (the default), 1 wifi
        if isinstance(ota_type, str) and ota_type.isdigit():
            ota_type = int(ota_type)
        if ota_type not in (MCU, WIFI) or isinstance(ota_type, bool):
            return await self.answer(x, PARAM_ERROR, "ug_type must be 0 (mcu) or 1 (wifi)")
        if self._version_taken(ota_type, fields["version"]):
            return await self.answer(x, PARAM_ERROR, "version %s exists" % fields["version"])
        record = self._new_file(ota_type, fields, TEST)
        return await self.answer(x, OK, "upload file ok", self._shown(x, record))

    async def list(self, x):
        failed = self._gate(x, product=True)
        if failed:
            return await self.fail(x, *failed)
        page = x.query.get("page", "1")
        files = self._live()
        pages = max(1, (len(files) + PAGE_SIZE - 1) // PAGE_SIZE)
        if not page.isdigit() or not 1 <= int(page) <= pages:
            return await self.answer(x, PARAM_ERROR, "invalid page %s" % page)
        n = int(page)
        base = "%s://%s%s" % (x.request.scheme, x.request.host, x.request.path)

        def link(k):
            if not 1 <= k <= pages:
                return None
            return base if k == 1 else "%s?page=%d" % (base, k)

        data = {
            "count": len(files),
            "page_size": PAGE_SIZE,
            "next": link(n + 1),
            "previous": link(n - 1),
            "results": [self._shown(x, f) for f in files[(n - 1) * PAGE_SIZE : n * PAGE_SIZE]],
        }
        return await self.answer(x, OK, "info list", data)

    async def get(self, x):
        failed = self._gate(x, product=True)
        if failed:
            return await self.fail(x, *failed)
        record = self._file(x)
        if record is None:
            return await self.answer(x, PARAM_ERROR, "file %s not found" % _fid(x))
        return await self.answer(x, OK, "file info", self._shown(x, record))

    async def update(self, x):
        failed = self._gate(x, product=True)
        if failed:
            return await self.fail(x, *failed)
        record = self._file(x)
        if record is None:
            return await self.answer(x, PARAM_ERROR, "file %s not found" % _fid(x))
        body = self._body(x)
        if body is None:
            return await self.answer(x, PARAM_ERROR, "the body must be JSON or a form")
        fields, why = self._fields(body, ("file_url", "version", "md5", "size"))
        if why:
            return await self.answer(x, PARAM_ERROR, why)
        status = body.get("status", record["status"])
        if isinstance(status, str) and status.isdigit():  # a form's value
            status = int(status)
        if status not in (TEST, ONLINE, INVALID) or isinstance(status, bool):
            return await self.answer(x, PARAM_ERROR, "status must be 0, 1 or 2")
        if self._version_taken(record["ota_type"], fields["version"], but=record):
            return await self.answer(x, PARAM_ERROR, "version %s exists" % fields["version"])
        if fields["version"] != record["version"] or fields["file_url"] != record["file_url"]:
            self.jobs[record["id"]] = {"state": PUBLISHED, "downloads": 0}  # a new release
        record.update(fields)
        record["status"] = status
        record["updated_at"] = iso_time(self.now())
        keys = ("ota_type", "file_name", "file_url", "size", "md5", "version", "mac_range")
        data = {k: record[k] for k in keys}
        data["file_url"] = self._url(x, record["file_url"])
        data["extra"] = record["extra"]
        return await self.answer(x, OK, "update file ok", data)

    async def delete(self, x):
        failed = self._gate(x, product=True)
        if failed:
            return await self.fail(x, *failed)
        if not x.request.match_info["fid"].isdigit():
            return await self.answer(x, PARAM_ERROR, "the id must be an integer")
        record = self._file(x)
        if record is None:
            return await self.answer(x, NO_SUCH_TASK, "ot_id错误,找不到任务")
        if record["status"] != TEST:
            return await self.answer(x, TASK_STATE, "任务状态错误:仅有测试中的任务可以删除")
        record["is_delete"] = True
        record["updated_at"] = iso_time(self.now())
        return await self.answer(x, OK, "任务删除成功", {"ot_id": None})

    async def upload(self, x):
        form = _multipart(x.request.headers.get("Content-Type", ""), x.body)
        if form is None:
            return await _oss_error(self, x, 400, "InvalidArgument", "not a multipart form")
        text = {k: v.decode("utf-8", "replace") for k, v in form.items() if k != "file"}
        policy = text.get("policy", "")
        if text.get("OSSAccessKeyId") != _OSS_ID or not hmac.compare_digest(
            self._oss_sign(policy).encode(), text.get("Signature", "").encode()
        ):
            return await _oss_error(self, x, 403, "SignatureDoesNotMatch", "bad signature")
        try:
            conditions = json.loads(base64.b64decode(policy))
            expires = datetime.datetime.strptime(conditions["expiration"], "%Y-%m-%dT%H:%M:%S.000Z")
        except (ValueError, KeyError, TypeError):
            return await _oss_error(self, x, 400, "InvalidPolicyDocument", "bad policy")
        if expires.replace(tzinfo=datetime.UTC).timestamp() < self.now():
            return await _oss_error(self, x, 403, "AccessDenied", "Policy expired.")
        key = text.get("key", "")
        data = form.get("file")
        if not key.startswith(_OSS_DIR) or ".." in key.split("/") or key.endswith("/"):
            return await _oss_error(self, x, 403, "AccessDenied", "key must be under ota/")
        if data is None:
            return await _oss_error(self, x, 400, "InvalidArgument", "no file field")
        self.blobs[key] = data
        md5 = hashlib.md5(data).hexdigest()
        headers = {"ETag": '"%s"' % md5.upper()}
        if text.get("callback"):
            base = "%s://%s" % (x.request.scheme, x.request.host)
            info = {"file_url": base + "/files/" + quote(key), "md5": md5, "size": len(data)}
            obj = {"meta": {"code": OK, "message": "upload ok"}, "data": info}
            return await self.send_json(x, obj, 200, headers)
        status = text.get("success_action_status", "204")
        status = int(status) if status in ("200", "201", "204") else 204
        return await self.send(x, status, b"", "text/plain", headers)


def _fid(x):
    return x.request.match_info["fid"]


async def _oss_error(emu, x, status, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<RequestId>%s</RequestId></Error>\n" % (code, message, secrets.token_hex(12).upper())
    )
    return await emu.send(x, status, body.encode(), "application/xml")


def _multipart(ctype, body):
    """{field name: bytes} of a multipart/form-data body, or None."""
    kind, _, params = ctype.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    boundary = None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return None
    out = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            return None
        if content.endswith(b"\r\n"):
            content = content[:-2]
        name = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for item in line.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    if k == "name":
                        name = v.strip('"')
        if name is None:
            return None
        out[name] = content
    return out
