"""The client side of the cloud emulator tests (test_emu_*.py) on CPython: plain requests with
http.client and raw sockets, so that the agent's own client is not what is tested, and each cloud's
calls as those tests make them."""

import http.client
import json
import os
import socket
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from emu import aliyun, onenet_token, sagoo  # noqa: E402

TIMEOUT = 5
QUIET_S = 0.3  # how long "nothing more arrives" is watched for


def _ca_context():
    ca = (Path(os.environ["FOTA_TEST_FILES"]) / "ca.der").read_bytes()
    return ssl.create_default_context(cadata=ca)


class Api:
    """Plain requests to one emulator (http.client, one connection per request)."""

    def __init__(self, url, image=None):
        self.url = url
        self.image = image  # what reset() serves unless told otherwise
        parts = urlsplit(url)
        self.host, self.port, self.tls = parts.hostname, parts.port, parts.scheme == "https"

    def connection(self):
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=TIMEOUT, context=_ca_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)

    def request(self, method, path, body=None, headers=None):
        """-> (status, {lowercase header: value}, body bytes); body: bytes or JSON-able."""
        conn = self.connection()
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, status=200):
        got, _, data = self.request(method, path, body, headers)
        assert got == status, (got, data)
        return json.loads(data)

    def ctl(self, name, body=None):
        if body is None:
            return self.json("GET", "/_emu/" + name)
        return self.json("POST", "/_emu/" + name, body)

    def reset(self, **options):
        """Reset with this Api's image as version 2.0.0 unless options say otherwise."""
        body = {"image": self.image, "version": "2.0.0"}
        body.update(options)
        return self.ctl("reset", body)

    def ctl_error(self, name, body):
        return self.json("POST", "/_emu/" + name, body, status=400)["error"]

    def raw(self, request):
        """Send request bytes on a fresh (TLS) socket; -> the socket."""
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        if self.tls:
            sock = _ca_context().wrap_socket(sock, server_hostname=self.host)
        sock.sendall(request)
        return sock

    def path_of(self, url):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (self.host, self.port), url
        return parts.path + ("?" + parts.query if parts.query else "")


def read_head(sock, want_body):
    """Read the head and at least want_body body bytes: -> (head text, body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < want_body:
        piece = sock.recv(65536)
        assert piece, "closed early: %r" % data[:300]
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


def read_to_close(sock):
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def assert_quiet(sock):
    """Nothing more arrives, and the connection stays open, for QUIET_S."""
    sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        sock.recv(1)


def first_response(sock):
    """The body of the first response on a raw socket."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.read()


# -- OneNET (legacy and fuse) -------------------------------------------------------------------

KEY = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="  # the docs' sample key
DEV_KEY = "iLItnGVvZyXkvDxWDTDnG1x4qENBpu6/gbQ7LDx+XAo="  # the emulator's default device key
DEV = "dev_id=522747162"
FUSE = "/fuse-ota/123123/mydev/"


def token(res="products/123123", key=KEY, method="sha1", version="2018-10-31", et=None):
    et = int(time.time()) + 30 * 24 * 3600 if et is None else et  # outlives clock shifts
    return {"Authorization": onenet_token.make(key, res, et, method, version)}


def check(api, version="1.0.0", type_=1, cdn="false", manuf=101, model=10101, auth=None):
    path = "/ota/south/check?%s&manuf=%s&model=%s&type=%s&version=%s&cdn=%s" % (
        DEV,
        manuf,
        model,
        type_,
        version,
        cdn,
    )
    return api.json("GET", path, headers=auth or token())


def progress(api, tok, step):
    path = "/ota/south/device/download/%s/progress?%s" % (tok, DEV)
    return api.json("POST", path, {"step": step}, token())["errno"]


def token_check(api, tok):
    return api.json("GET", "/ota/south/download/%s/check?%s" % (tok, DEV), headers=token())


def task(api):
    return api.ctl("state")["task"]


def started(api, **options):
    """Reset with the image, check: -> the task token."""
    api.reset(**options)
    answer = check(api)
    assert answer["errno"] == 0, answer
    return answer["data"]["token"]


# -- Sagoo --------------------------------------------------------------------------------------


def sagoo_query(time_="1703834918", sign=None, ak="iotak", sk="iotsk20200907", app="fota"):
    sign = sign or sagoo.sign(sk, ak, time_)
    return "ak=%s&time=%s&sign=%s&appId=%s" % (ak, time_, sign, app)


def info(api, version="1.0.0", module="default", query=None, key="dev001", prefix="/base-api"):
    path = "%s/openapi/v1/ota/get_ota_info?%s&deviceKey=%s&version=%s&module=%s" % (
        prefix,
        query or sagoo_query(),
        key,
        version,
        module,
    )
    return api.json("GET", path)


def write(api, body, query=None):
    path = "/base-api/openapi/v1/ota/write_ota_info?" + (query or sagoo_query())
    return api.json("POST", path, body)


# -- Aliyun -------------------------------------------------------------------------------------

PK, DN = "ZG1EvTEa7NN", "NlwaSPXsCpTQuh8FxBGH"
SAMPLE = {"clientId": "mylight1000002", "deviceName": DN, "productKey": PK}
TOPIC_GET = "/topic/sys/%s/%s/thing/ota/firmware/get" % (PK, DN)
TOPIC_INFORM = "/topic/ota/device/inform/%s/%s" % (PK, DN)
TOPIC_PROGRESS = "/topic/ota/device/progress/%s/%s" % (PK, DN)
_ids = [0]


def auth_body(fields=None, method="hmacsha1", secret="secret", sign=None, **extra):
    body = dict(SAMPLE if fields is None else fields)
    body.update(extra)
    body["sign"] = sign if sign is not None else aliyun.sign(secret, body, method)
    if method is not None:
        body["signmethod"] = method
    body["version"] = "default"
    return body


def auth(api, body, headers=None):
    return api.json("POST", "/auth", body, headers or {"Content-Type": "application/json"})


def token_of(api, **kw):
    answer = auth(api, auth_body(**kw))
    assert answer["code"] == 0, answer
    return answer["info"]["token"]


def set_clock(api, unix_s):
    """Shift the emulator's clock so that its now is about unix_s."""
    api.ctl("clock", {"offset_s": unix_s - time.time()})


def publish(api, topic, payload, token, ctype="application/octet-stream", raw=False):
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["password"] = token
    if not raw:
        _ids[0] += 1
        payload = json.dumps(dict(payload, id=str(_ids[0]))).encode()
    return api.json("POST", topic, payload, headers)


def firmware_get(api, token, module=None):
    params = {"module": module} if module else {}
    body = {"version": "1.0", "params": params, "method": "thing.ota.firmware.get"}
    answer = publish(api, TOPIC_GET, body, token)
    assert answer["code"] == 0, answer
    return answer["info"]["data"]


def step(api, token, value, desc="", module=None):
    params = {"step": value, "desc": desc}
    if module:
        params["module"] = module
    return publish(api, TOPIC_PROGRESS, {"params": params}, token)["code"]


def inform(api, token, version, module=None):
    params = {"version": version}
    if module:
        params["module"] = module
    return publish(api, TOPIC_INFORM, {"params": params}, token)["code"]


# -- MXCHIP -------------------------------------------------------------------------------------

TOKEN = "d79be1d657d9a8b45f6f903620e84b06cbf225e0"
AUTH = {"Authorization": "token " + TOKEN}
FILES = "/api/v1/ota/test/files/"


def mx_check(api, wifi="1.0.0", mcu="1.0.0", pid="test", headers=AUTH, status=200):
    path = "/api/v1/ota/device/?product_id=%s&wifi_version=%s&mcu_version=%s" % (pid, wifi, mcu)
    return api.json("GET", path, headers=headers, status=status)


def mx_put(api, wifi, mcu, device="mxdev001", status=200):
    body = {"device_id": device, "wifi_version": wifi, "mcu_version": mcu}
    return api.json("PUT", "/api/v1/ota/version/", body, AUTH, status)


def new_file(api, status=200, **fields):
    body = {
        "file_name": "ota.bin",
        "file_url": "https://example.com/a.bin",
        "md5": "0" * 32,
        "size": "20kb",
        "version": "1.0.1",
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return api.json("POST", FILES, body, AUTH, status)


def oss_upload(api, key, data, token=None, callback=True, **overrides):
    token = token or api.json("GET", "/oss_token/ota/", headers=AUTH)["data"]
    fields = {
        "key": key,
        "policy": token["policy"],
        "OSSAccessKeyId": token["accessid"],
        "Signature": token["signature"],
        "success_action_status": "200",
    }
    if callback:
        fields["callback"] = token["callback"]
    fields.update(overrides)
    boundary = "fotaBoundary42"
    parts = []
    for name, value in fields.items():
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (boundary.encode(), name.encode(), value.encode())
        )
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%s\r\n--%s--\r\n"
        % (boundary.encode(), data, boundary.encode())
    )
    headers = {"Content-Type": "multipart/form-data; boundary=" + boundary}
    return api.request("POST", api.path_of(token["host"]) + "/", b"".join(parts), headers)
