# Aliyun IoT over its HTTP(S) channel: /auth for a token, then publishes to /topic/{topic}.
#
# From Aliyun's HTTP channel documentation (auth body and sign rule, the `password` header,
# codes, 128 KB limit, the token's 48 h life) and its OTA topics and payloads (HTTP devices can
# publish the OTA uplinks but get no push: the firmware/get reply's `info.data` is used when
# present, and offer_from_push() takes a job in the push format from any channel).
#
# sign = hex(HMAC_<md5|sha1>(deviceSecret, content)), content = every parameter but version,
# sign and signmethod, sorted by name, as name+value with no separator. The token (valid 48 h)
# lives in RAM for one phase (a poll, the settlement at boot): the platform allows caching it on
# the device, but a credential on flash outlives its use, so each phase authenticates once.
# 20001/20002/20003 mean "authenticate again" (once per call); 40000 (rate limit) is a retryable
# error for the poll loop's backoff. Success of an update is only ever decided by an inform of
# the target version.

from micropython import const

from fota.clouds.base import call, describe, step_for, unix_time
from fota.core import errors, hmac  # every request signs: loaded with the module
from fota.core.offer import Offer

_MAX_BODY = const(128 * 1024)  # Aliyun's HTTP page: 上行接口传输的数据大小限制为128k
_REAUTH = const((20001, 20002, 20003))
_RATE_LIMIT = const(40000)
_AUTH_FAILED = const(20000)
_CLOCK_SET = const(1577836800)  # 2020-01-01: a clock before that was never set (no NTP yet)


def sign(secret, fields, method="hmacsha1"):
    """The /auth sign over fields (dict of the signed parameters), lowercase hex."""
    if method not in ("hmacsha1", "hmacmd5"):
        raise errors.OTAError(errors.CONFIG, "aliyun.sign_method must be hmacsha1 or hmacmd5")
    content = "".join(k + str(fields[k]) for k in sorted(fields))
    return hmac.hexdigest(method[4:], secret, content)


def offer_from_push(obj):
    """An Offer from an upgrade job in Aliyun's push format (/ota/device/upgrade, or the data of
    a firmware/get reply), from any channel (HTTP reply, MQTT message). obj: the whole message
    or its `data`. -> Offer, or None for an empty job ({} means nothing to upgrade)."""
    data = obj.get("data", obj) if isinstance(obj, dict) else None
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except ValueError:
            raise errors.OTAError(errors.PROTOCOL, "aliyun: job data is not JSON") from None
    if not isinstance(data, dict):
        raise errors.OTAError(errors.PROTOCOL, "aliyun: job data is not an object")
    if not data:
        return None
    if data.get("dProtocol") == "mqtt" or not data.get("url"):
        raise errors.OTAError(
            errors.PROTOCOL, "aliyun: only jobs with an HTTPS url can be downloaded"
        )
    if data.get("isDiff") == 1:
        raise errors.OTAError(errors.PROTOCOL, "aliyun: diff packages are not supported")
    method = str(data.get("signMethod", "")).lower()
    md5 = data.get("md5")
    sha256 = None
    if method == "sha256":
        sha256 = data.get("sign")
    elif method == "md5":
        md5 = md5 or data.get("sign")
    elif not md5:
        raise errors.OTAError(
            errors.PROTOCOL, "aliyun: unknown signMethod %r" % (data.get("signMethod"),)
        )
    module = data.get("module") or "default"
    return Offer(
        data["url"],
        data.get("size"),
        md5=md5,
        sha256=sha256,
        version=data.get("version"),
        module=module,
        job={"module": module},
        key="aliyun|%s|%s|%s" % (module, data.get("version"), sha256 or md5),
    )


class Aliyun:
    name = "aliyun"
    inform_at_boot = True  # the app reports the running version at every boot

    def __init__(self, client, server, cfg, clock, on_event=None):
        self.client = client
        self.server = server.rstrip("/")
        self.pk = cfg["product_key"]
        self.dn = cfg["device_name"]
        self.secret = cfg["device_secret"]
        self.client_id = cfg.get("client_id") or "%s.%s" % (self.pk, self.dn)
        self.method = cfg.get("sign_method", "hmacsha1")
        self.module = cfg.get("module")
        self.clock = clock
        self.on_event = on_event
        self._token = None
        self._id = unix_time(clock) % 1000000 * 1000

    # -- token: kept in RAM only, for the phase (a poll, the settlement at boot) that got it; a
    #    credential is never written to flash

    def authenticate(self):
        """POST /auth -> the token."""
        fields = {"clientId": self.client_id, "deviceName": self.dn, "productKey": self.pk}
        now = unix_time(self.clock)
        if now > _CLOCK_SET:  # the timestamp is optional; a wrong one (clock not set) fails
            fields["timestamp"] = str(now * 1000)
        body = dict(fields)
        body["version"] = "default"
        body["signmethod"] = self.method
        body["sign"] = sign(self.secret, fields, self.method)
        status, obj = call(self.client, "POST", self.server + "/auth", None, body)
        code = obj.get("code")
        if code == _RATE_LIMIT:
            raise errors.OTAError(
                errors.DOWNLOAD, "aliyun: too many requests (40000)", retryable=True
            )
        if code != 0:
            raise errors.OTAError(
                errors.AUTH, "aliyun: auth failed: %s (%s)" % (obj.get("message"), code)
            )
        info = obj.get("info")
        token = info.get("token") if isinstance(info, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.OTAError(errors.PROTOCOL, "aliyun: auth answer without a token")
        self._token = token
        return token

    def token(self):
        return self._token or self.authenticate()

    # -- publish

    def _next_id(self):
        self._id = (self._id + 1) % 4294967295
        return str(self._id)

    def publish(self, topic, payload):
        """POST payload (an object, sent as JSON) to /topic{topic}. -> the reply's info.data
        (None when absent). Authenticates again once on an expired or missing token."""
        import json

        body = json.dumps(payload).encode()
        if len(body) > _MAX_BODY:
            raise errors.OTAError(
                errors.PROTOCOL, "aliyun: message of %d bytes is over 128 KB" % len(body)
            )
        for attempt in (0, 1):
            headers = {"password": self.token(), "Content-Type": "application/octet-stream"}
            resp = self.client.request("POST", self.server + "/topic" + topic, headers, body)
            if resp.status >= 500:
                resp.close()
                raise errors.OTAError(
                    errors.DOWNLOAD, "aliyun: HTTP %d" % resp.status, retryable=True
                )
            obj = resp.json(_MAX_BODY)
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 0:
                info = obj.get("info")
                return info.get("data") if isinstance(info, dict) else None
            if code in _REAUTH and attempt == 0:
                self._token = None
                self.authenticate()
                continue
            if code == _RATE_LIMIT:
                raise errors.OTAError(
                    errors.DOWNLOAD, "aliyun: too many requests (40000)", retryable=True
                )
            if code in _REAUTH or code == _AUTH_FAILED:
                raise errors.OTAError(errors.AUTH, "aliyun: token refused (%s)" % code)
            message = obj.get("message") if isinstance(obj, dict) else None
            raise errors.OTAError(
                errors.PROTOCOL, "aliyun: publish to %s failed: %s (%s)" % (topic, message, code)
            )
        return None

    def _params(self, params):
        return {"id": self._next_id(), "params": params}

    # -- the cloud interface (fota.clouds.base)

    def report_version(self, version, module=None):
        params = {"version": version}
        module = module or self.module
        if module and module != "default":
            params["module"] = module
        self.publish("/ota/device/inform/%s/%s" % (self.pk, self.dn), self._params(params))

    def check(self, version):
        params = {"module": self.module} if self.module else {}
        request = {
            "id": self._next_id(),
            "version": "1.0",
            "params": params,
            "method": "thing.ota.firmware.get",
        }
        data = self.publish("/sys/%s/%s/thing/ota/firmware/get" % (self.pk, self.dn), request)
        if data is None:
            return None
        offer = offer_from_push(data)
        if offer is None or offer.version == version:
            return None
        return offer

    def start(self, offer):
        pass

    def _progress(self, job, step, desc=""):
        params = {"step": step, "desc": desc}
        module = job.get("module")
        if module and module != "default":
            params["module"] = module
        try:
            self.publish("/ota/device/progress/%s/%s" % (self.pk, self.dn), self._params(params))
        except errors.OTAError as exc:
            if exc.reason != errors.PROTOCOL:
                raise
            if self.on_event:
                self.on_event("report_refused", {"step": step, "error": exc.message})

    def progress(self, job, percent):
        if 1 <= percent < 100:
            self._progress(job, str(percent))

    def downloaded(self, job):
        self._progress(job, "100")

    def failed(self, job, error, stage):
        self._progress(job, step_for(error, stage), describe(error))

    def succeeded(self, job, version):
        # Aliyun decides success only by an inform of the target version.
        self.report_version(version, job.get("module"))
