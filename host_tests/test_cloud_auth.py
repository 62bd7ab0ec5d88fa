# The clouds' request signatures against checked vectors (Sagoo: nexframe's auth/aksk_test.go and
# the AK/SK docs' sample keys; OneNET: its token page's sample key; Aliyun: its published sign
# example), on both runtimes: HMAC on hashlib, base64, URL-encoding, and the device clock's epoch.

import binascii
import hashlib

from dual import fails

from fota.clouds import base, onenet_token, sagoo
from fota.core import errors, hmac

RUN_ON_MICROPYTHON = True

ONENET_KEY = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="


def _sign_of(header):
    return dict(part.split("=", 1) for part in header.split("&"))["sign"]


def test_hmac_matches_rfc_2202_and_4231_vectors():
    # RFC 2202 test case 2 (md5, sha1) and RFC 4231 test case 2 (sha256): key "Jefe"
    msg = b"what do ya want for nothing?"
    assert hmac.hexdigest("md5", b"Jefe", msg) == "750c783e6ab0b503eaa86e310a5db738"
    assert hmac.hexdigest("sha1", b"Jefe", msg) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    assert hmac.hexdigest("sha256", b"Jefe", msg) == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # RFC 4231 test case 6: a key longer than the block is hashed first
    long_key = b"\xaa" * 131
    text = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert hmac.hexdigest("sha256", long_key, text) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )
    fails(errors.CONFIG, hmac.digest, "sha512", b"k", b"m")


def test_onenet_token_vectors_for_every_method():
    expected = {
        "sha1": "lsaPSiiGvEFFjXu5WU7a6IkScqE=",
        "md5": "M3jB6jcSNUuGcvW3dFcrWA==",
        "sha256": "tuFMd8Cc5krZO+RiNaW4mad5tauSFq2J89Gd70MXQPI=",
    }
    for method, sign in expected.items():
        header = onenet_token.token(ONENET_KEY, "products/123123", 1537255523, method)
        assert _sign_of(header) == base.quote(sign)
    header = onenet_token.token(ONENET_KEY, "products/123123", 1537255523, "sha1")
    assert header == (
        "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1"
        "&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
    )


def test_onenet_token_device_and_user_res_and_2022_version():
    header = onenet_token.token(ONENET_KEY, "products/123123/devices/mydev", 1537255523, "sha1")
    assert "res=products%2F123123%2Fdevices%2Fmydev" in header
    assert _sign_of(header) == base.quote("p2Bv5QYrZolQCtt68923gtxRCVk=")
    header = onenet_token.token(ONENET_KEY, "userid/12321", 1537255523, "sha1", "2022-05-01")
    assert header.startswith("version=2022-05-01&res=userid%2F12321&et=1537255523")
    assert _sign_of(header) == "EWI3xcVT%2B9vvnk%2FWOel6VYmSU4I%3D"


def test_onenet_key_that_is_not_base64_is_a_config_error():
    err = fails(errors.CONFIG, onenet_token.token, "not base64!", "products/1", 1, "sha1")
    assert "onenet.key" in err.message


def test_onenet_signer_sets_expiry_from_the_clock_with_its_ttl():
    class Clock:
        def time(self):
            return 1700000000

    signer = onenet_token.Signer(
        {"key": ONENET_KEY, "token_ttl": 600}, Clock(), "products/9", "2018-10-31"
    )
    header = signer.header()["Authorization"]
    assert "&et=1700000600&" in header
    assert "res=products%2F9" in header
    fails(
        errors.CONFIG,
        onenet_token.Signer,
        {"key": ONENET_KEY, "method": "sha512"},
        Clock(),
        "r",
        "v",
    )


def test_unix_time_corrects_a_2000_epoch_clock():
    class Clock2000:
        def time(self):
            return 100

        def gmtime(self, t):
            return (2000, 1, 1, 0, 0, 0, 5, 1)

    class Clock1970(Clock2000):
        def gmtime(self, t):
            return (1970, 1, 1, 0, 0, 0, 3, 1)

    assert base.unix_time(Clock2000()) == 946684900
    assert base.unix_time(Clock1970()) == 100


def test_sagoo_sign_vectors():
    assert sagoo.sign("iotak", "iotsk20200907", 1703834918) == (
        "90cfbaabe282e97228115f3684be4e6b626418cf2de18254d4fa0308a08d2044"
    )
    assert sagoo.sign("aadfsdfsa", "asfwerttytyrtyewrwerfasdfsfsfsf2", 1640494526) == (
        "297a96cdd35b05a6c399a6bcf392d9078e28581d8daea62a0ded8c13fe1df44a"
    )


def test_quote_encodes_everything_but_unreserved():
    assert base.quote("a+b /?%#&=~-._Z9") == "a%2Bb%20%2F%3F%25%23%26%3D~-._Z9"
    assert base.quote("\u00e9") == "%C3%A9"
    assert base.query((("x", 1), ("y", "a b"))) == "x=1&y=a%20b"


def test_pure_python_md5_hmac_matches_hashlib():
    # ports without hashlib.md5 sign with fota.core.md5: same HMAC, compared on this runtime
    from fota.core.md5 import md5

    key = b"k" * 70
    inner = md5(bytes(b ^ 0x36 for b in hashlib.md5(key).digest() + b"\x00" * 48))
    inner.update(b"msg")
    outer = md5(bytes(b ^ 0x5C for b in hashlib.md5(key).digest() + b"\x00" * 48))
    outer.update(inner.digest())
    assert binascii.hexlify(outer.digest()) == binascii.hexlify(hmac.digest("md5", key, b"msg"))


def test_aliyun_sign_vectors():
    from fota.clouds import aliyun

    fields = {"clientId": "12345", "deviceName": "device", "productKey": "pk", "timestamp": "789"}
    assert aliyun.sign("secret", fields, "hmacsha1") == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert aliyun.sign("secret", fields, "hmacmd5") == "14b198324fe55e1d3c88f2e705e201ee"
    doc = {
        "clientId": "mylight1000002",
        "deviceName": "NlwaSPXsCpTQuh8FxBGH",
        "productKey": "ZG1EvTEa7NN",
        "timestamp": "1501668289957",
    }
    assert aliyun.sign("secret", doc, "hmacsha1") == "335bdc0fbd47de9bbf1f7f77fdf803ab1821f5ed"
    assert aliyun.sign("secret", doc, "hmacmd5") == "c7692bed2591603442c19b087213f737"
    del doc["timestamp"]
    assert aliyun.sign("secret", doc, "hmacsha1") == "d34c809238a1eaf25f48ddef7cdb0bdd551efcdf"
    fails(errors.CONFIG, aliyun.sign, "secret", doc, "hmacsha256")


def test_aliyun_push_job_becomes_an_offer():
    from fota.clouds import aliyun

    push = {
        "code": "1000",
        "data": {
            "size": 1000, "version": "2.0.0", "url": "https://x/fw.bin", "md5": "AB" * 16,
            "sign": "ab" * 16, "signMethod": "Md5", "module": "MCU", "extData": {"k": "v"},
        },
    }  # fmt: skip
    offer = aliyun.offer_from_push(push)
    assert (offer.url, offer.size, offer.md5, offer.version) == ("https://x/fw.bin", 1000,
                                                                 "AB" * 16, "2.0.0")  # fmt: skip
    assert offer.job == {"module": "MCU"} and offer.sha256 is None
    sha = aliyun.offer_from_push({"url": "https://x", "size": 5, "sign": "cd" * 32,
                                  "signMethod": "SHA256", "version": "3"})  # fmt: skip
    assert sha.sha256 == "cd" * 32 and sha.md5 is None and sha.job == {"module": "default"}
    assert aliyun.offer_from_push({"code": 200, "data": {}}) is None
    as_text = aliyun.offer_from_push({"data": '{"url": "https://x", "size": 5, "md5": "%s"}'
                                      % ("0" * 32)})  # fmt: skip
    assert as_text.md5 == "0" * 32
    fails(errors.PROTOCOL, aliyun.offer_from_push, {"data": {"dProtocol": "mqtt"}})
    fails(errors.PROTOCOL, aliyun.offer_from_push, {"data": {"url": "https://x", "isDiff": 1}})
    bad = {"data": {"url": "https://x", "signMethod": "crc"}}
    fails(errors.PROTOCOL, aliyun.offer_from_push, bad)
