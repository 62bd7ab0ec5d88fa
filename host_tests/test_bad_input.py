# The bad-input matrix: every cloud's check answered with something malformed, on both runtimes.
#
# The fault server's /answer/HEX/... path answers any request with the status and body the test
# names (an Aliyun /auth gets a token first), so each cloud module, the HTTP client and the
# update cycle meet exactly that answer. Each case must end in an OTAError (the agent's guard
# makes it one error event) or a failed update that is reported and given up (a malformed
# offer); never another exception, never a sector erased, the board still on its running
# slot. 85 cases, on each runtime.

import binascii
import json
import os

import e2e
import esp32
from dual import new_board, rmtree
from fakeclock import FakeClock

from fota.clouds.aliyun import Aliyun
from fota.clouds.mxchip import Mxchip
from fota.clouds.onenet import OneNet
from fota.clouds.onenet_fuse import OneNetFuse
from fota.clouds.sagoo import Sagoo
from fota.core.download import Downloader
from fota.core.errors import OTAError
from fota.core.journal import Journal
from fota.core.store import Store
from fota.core.update import Updater
from fota.slots.esp32slot import Esp32Slot
from fota.transport.http import Client

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "4m"

CLOUDS = (
    ("onenet", OneNet, e2e.ONENET),
    ("onenet-fuse", OneNetFuse, e2e.ONENET_FUSE),
    ("sagoo", Sagoo, e2e.SAGOO),
    ("aliyun", Aliyun, e2e.ALIYUN),
    ("mxchip", Mxchip, e2e.MXCHIP),
)

# answers no cloud accepts: (what, status, body); "big" is a 1 MB body
GENERIC = (
    ("invalid JSON", 200, '{"errno": 0, "data": {'),
    ("a JSON array", 200, "[1, 2, 3]"),
    ("a JSON string", 200, '"ok"'),
    ("a JSON number", 200, "0"),
    ("null", 200, "null"),
    ("an empty body", 200, ""),
    ("an HTML error page", 404, "<html><body>Not Found</body></html>"),
    ("a server error", 503, "busy"),
    ("a 1 MB body", 200, None),
    ("an object of the wrong shape", 200, '{"data": [], "code": "x", "errno": "x", "meta": 5}'),
)

GOOD_MD5 = "0123456789abcdef0123456789abcdef"


def _offers():
    """Each cloud's check answer carrying an offer, from a dict of the offer's fields."""
    return {
        "onenet": lambda f: {"errno": 0, "error": "succ", "data": dict({"token": "tk"}, **f)},
        "onenet-fuse": lambda f: {"code": 0, "msg": "succ", "data": dict({"tid": 7}, **f)},
        "sagoo": lambda f: {"code": 0, "data": dict({"signMethod": "MD5",
                                                     "extData": {"strategy": 3}}, **f)},
        "aliyun": lambda f: {"code": 0, "info": {"data": dict({"signMethod": "Md5"}, **f)}},
        "mxchip": lambda f: {"meta": {"code": 0}, "data": {"need_ota": True, "files": [
            dict({"ota_type": 1}, **f)]}},
    }  # fmt: skip


# offers whose fields are wrong: (what, fields); `url` is filled in per cloud
def _bad_offers():
    return (
        ("a size of -1", {"size": -1, "md5": GOOD_MD5, "target": "2.0.0", "version": "2.0.0"}),
        ("a size as text", {"size": "1000", "md5": GOOD_MD5, "target": "2.0.0",
                            "version": "2.0.0"}),
        ("a digest of the wrong length", {"size": 1000, "md5": "abc", "sign": "abc",
                                          "target": "2.0.0", "version": "2.0.0"}),
        ("a digest that is not hex", {"size": 1000, "md5": "z" * 32, "sign": "z" * 32,
                                      "target": "2.0.0", "version": "2.0.0"}),
        ("a version as a list", {"size": 1000, "md5": GOOD_MD5, "sign": GOOD_MD5,
                                 "target": ["2.0.0"], "version": ["2.0.0"]}),
        ("an ftp:// url", {"size": 1000, "md5": GOOD_MD5, "sign": GOOD_MD5, "target": "2.0.0",
                           "version": "2.0.0", "url": "ftp://host/fw.bin",
                           "file_url": "ftp://host/fw.bin"}),
        ("a url as a number", {"size": 1000, "md5": GOOD_MD5, "sign": GOOD_MD5,
                               "target": "2.0.0", "version": "2.0.0", "url": 42,
                               "file_url": 42}),
    )  # fmt: skip


def _server(spec):
    hexed = binascii.hexlify(json.dumps(spec).encode()).decode()
    return os.getenv("FOTA_TEST_HTTP") + "/answer/" + hexed


def _try(name, cls, section, spec):
    """-> (what the update cycle did: a result string or "error:<reason>", erases made)."""
    tmp, _ = new_board(version="1.0.0")
    client = Client(allow_http=True, read_timeout=2.0, deadline=10)
    try:
        cloud = cls(client, _server(spec), dict(section), FakeClock())
        dl = Downloader(client, Esp32Slot("esp32"), Journal(tmp + "/fota.journal"), FakeClock(),
                        retries=1, backoff_ms=1)  # fmt: skip
        updater = Updater(cloud, dl, Store(tmp + "/fota.state"))
        before = sum(esp32.attached_flash().erase_counts)
        try:
            outcome = updater.run("1.0.0")
        except OTAError as exc:
            outcome = "error:" + exc.reason
        erased = sum(esp32.attached_flash().erase_counts) != before
        running = esp32.Partition(esp32.Partition.BOOT).info()[4]
        return outcome, erased, running
    finally:
        client.close()
        esp32.detach()
        rmtree(tmp)


def test_every_cloud_refuses_every_malformed_answer_cleanly():
    count = 0
    for name, cls, section in CLOUDS:
        for what, status, body in GENERIC:
            spec = {"status": status, "body": body} if body is not None else {"big": 1 << 20}
            outcome, erased, running = _try(name, cls, section, spec)
            # a check that fails: the loop's guard makes it one error event and a backoff; a
            # 5xx is the network's kind of failure, anything else a malformed answer
            expected = "error:download" if status >= 500 else "error:protocol"
            assert outcome == expected, (name, what, outcome)
            assert not erased and running == "ota_0", (name, what)
            count += 1
    assert count == 50


def test_every_cloud_fails_an_offer_with_wrong_fields_before_writing():
    count = 0
    for name, cls, section in CLOUDS:
        shape = _offers()[name]
        for what, fields in _bad_offers():
            fields = dict(fields)
            fields.setdefault("url", os.getenv("FOTA_TEST_HTTP") + "/status/404")
            fields.setdefault("file_url", fields["url"])
            spec = {"status": 200, "body": json.dumps(shape(fields))}
            outcome, erased, running = _try(name, cls, section, spec)
            # the offer fails before anything is erased, reported to the cloud and given up
            # ("failed"), or the cloud module refuses the answer itself (a check error)
            assert outcome in ("failed", "error:protocol"), (name, what, outcome)
            assert not erased and running == "ota_0", (name, what)
            count += 1
    assert count == 35


def _recorded(tag):
    client = Client(allow_http=True, read_timeout=2.0)
    try:
        return client.request("GET", os.getenv("FOTA_TEST_HTTP") + "/recorded/" + tag).json()
    finally:
        client.close()


def test_no_cloud_sends_a_credential_to_another_origin():
    # each cloud's first request is redirected from 127.0.0.1 to localhost (another origin),
    # where whatever arrives is recorded: none of its credentials may be in it
    port = os.getenv("FOTA_TEST_HTTP").rsplit(":", 1)[1]
    secrets = ("Authorization", "password", "authorization")
    for name, cls, section in CLOUDS:
        tag = "creds-%s-%s" % (name, binascii.hexlify(os.urandom(3)).decode())
        where = "http://localhost:%s/record/%s/x" % (port, tag)
        spec = {"status": 302, "location": where}
        tmp, _ = new_board(version="1.0.0")
        client = Client(allow_http=True, read_timeout=2.0)
        try:
            cloud = cls(client, _server(spec), dict(section), FakeClock())
            try:
                cloud.check("1.0.0")
            except OTAError:
                pass  # the recorder's {} is no answer; what matters is what it received
        finally:
            client.close()
            esp32.detach()
            rmtree(tmp)
        got = _recorded(tag)
        # a GET follows the redirect without its credentials; Aliyun's first request is a POST
        # of a signed body, which is not sent to another origin at all
        assert len(got) == (0 if name == "aliyun" else 1), (name, got)
        for request in got:
            names = [h[0] for h in request["headers"]]
            assert not [n for n in names if n in secrets], (name, names)
            text = json.dumps(request)
            for key in ("key", "sk", "device_secret", "token"):
                if key in section:
                    assert section[key] not in text, (name, key)
            assert "sign=" not in request["target"] and "sign" not in request["body"], name
