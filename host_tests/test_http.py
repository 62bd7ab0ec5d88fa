# The transport layer (fota.transport.http, the modules it imports on first use,
# fota.transport.url) against real
# servers: nginx, plain and TLS, and the fault-injecting server of netfixtures.py, on CPython and
# on the MicroPython unix port.
#
# Memory, measured on the MicroPython unix port (v1.29 preview, 64-bit), gc.mem_alloc() around
# one keep-alive get_range() of 1000 bytes to nginx, after warm-up: 192 bytes for the request and
# the response head (the memoryview slices for sending and for the first read, the
# Content-Type string, the 96 bytes the port allocates when a non-blocking read finds no data),
# 224 bytes with the body read to its end. test_keep_alive_range_request_costs_little_memory
# holds it under a bound; test_body_read_loop_allocates_nothing proves the body loop is free.

import gc
import os
import sys
import time

import micropython
from dual import fails

from fota.core.errors import CONFIG, DOWNLOAD, PROTOCOL, TIMEOUT, OTAError
from fota.transport import http, url
from fota.transport.url import resolve

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "256k"

REQUEST_ALLOC_BOUND = 512  # bytes per keep-alive get_range() + head; measured 192 (see above)


def _get(client, url, headers=None, keep=None):
    return client.request("GET", url, headers=headers, keep=keep)


def _send(client, method, url, headers=None, body=None, json=None):
    return client.request(method, url, headers=headers, body=body, json=json)


def _env(name):
    value = os.getenv(name)
    if not value:
        raise AssertionError("%s is not set: netfixtures.py should have started the servers" % name)
    return value


def _path(name):
    return _env("FOTA_TEST_FILES") + "/" + name


def _file(name):
    with open(_path(name), "rb") as f:
        return f.read()


def _slice(name, start, size):
    with open(_path(name), "rb") as f:
        f.seek(start)
        return f.read(size)


def _sizes():
    import json

    return {name: entry["size"] for name, entry in json.loads(_file("manifest.json")).items()}


def _ca(name="ca.der"):
    return _file(name)


def _tag():
    return "t" + os.urandom(4).hex()


def _plain(**kwargs):
    kwargs.setdefault("read_timeout", 5)
    return http.Client(allow_http=True, **kwargs)


def _read_all(resp, size=1000):
    out = bytearray()
    buf = bytearray(size)
    while True:
        n = resp.readinto(buf)
        if n == 0:
            return bytes(out)
        assert 0 < n <= size
        out.extend(buf[:n])


def _same_as_file(resp, name, size=4096):
    # compares the body with the file piece by piece (a 300 KB file need not fit the heap twice)
    buf = bytearray(size)
    total = 0
    with open(_path(name), "rb") as f:
        while True:
            n = resp.readinto(buf)
            if n == 0:
                assert f.read(1) == b"", "body shorter than %s" % name
                return total
            assert buf[:n] == f.read(n), "body differs from %s at %d" % (name, total)
            total += n


def _stats(tag):
    client = _plain()
    try:
        return _get(client, _env("FOTA_TEST_HTTP") + "/stats/" + tag).json()
    finally:
        client.close()


def _nginx_status():
    # stub_status: "Active connections: N \nserver accepts handled requests\n A H R \n..."
    client = _plain()
    try:
        lines = _get(client, _env("FOTA_TEST_NGINX") + "/nginx-status").body().decode().split("\n")
    finally:
        client.close()
    accepts, _handled, requests = lines[2].split()
    return int(accepts), int(requests)


def _ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _since_ms(start):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_ms(), start)
    return _ms() - start


# -- URLs


def test_url_split():
    assert url.split("http://example.com") == (False, "example.com", 80, "/")
    assert url.split("HTTPS://h:8443/a/b?x=1#frag") == (True, "h", 8443, "/a/b?x=1")
    assert url.split("http://h?q") == (False, "h", 80, "/?q")
    assert url.split("https://[::1]:444/x") == (True, "::1", 444, "/x")
    for bad in ("ftp://h/", "h/x", "http://", "http://h:0/", "http://h:99999/", "http://h:x/"):
        fails(CONFIG, url.split, bad)
    fails(CONFIG, url.split, "http://user:pw@h/")
    fails(CONFIG, url.split, "http://h/a b")
    fails(CONFIG, url.split, "http://h/a\r\nX-Evil: 1")


def test_url_resolve():
    base = "http://h:81/a/b/c.bin?x=1"
    assert resolve(base, "https://o/p") == "https://o/p"
    assert resolve(base, "//o/p") == "http://o/p"
    assert resolve(base, "/p?q") == "http://h:81/p?q"
    assert resolve(base, "d.bin") == "http://h:81/a/b/d.bin"
    assert resolve(base, "?y=2") == "http://h:81/a/b/c.bin?y=2"
    assert resolve("http://h", "x") == "http://h/x"


# -- bodies


def test_get_content_length_matches_file_on_disk():
    client = _plain()
    sizes = _sizes()
    assert sizes["medium.bin"] == 300000 and sizes["empty.bin"] == 0
    for name in ("small.bin", "medium.bin", "empty.bin"):
        resp = _get(client, _env("FOTA_TEST_NGINX") + "/" + name)
        assert resp.status == 200
        assert resp.length == sizes[name]
        assert resp.content_type == "application/octet-stream"
        assert _same_as_file(resp, name) == resp.length
        assert resp.done()
    assert client.connects == 1
    client.close()


def test_chunked_body():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/chunked/medium.bin")
    assert resp.status == 200 and resp.length is None
    assert _same_as_file(resp, "medium.bin", size=777) == 300000
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/chunked/small.bin")
    assert _read_all(resp, size=5000) == _file("small.bin")
    assert client.connects == 1  # the chunked bodies were read to the end: kept alive


def test_body_without_length_ends_at_close():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/nolength/small.bin")
    assert resp.length is None
    assert _read_all(resp) == _file("small.bin")
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/small.bin")
    assert len(resp.body(20000)) == 10000
    assert client.connects == 2


def test_small_body_helpers_enforce_their_limit():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/small.bin")
    fails(PROTOCOL, resp.body, 9999)
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/chunked/small.bin")
    fails(PROTOCOL, resp.body, 9999)
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/small.bin")
    fails(PROTOCOL, resp.json)
    assert _get(client, _env("FOTA_TEST_HTTP") + "/status/404").body() == b"status 404\n"


def test_head_request_has_no_body():
    client = _plain()
    resp = client.request("HEAD", _env("FOTA_TEST_NGINX") + "/small.bin")
    assert resp.status == 200 and resp.length == 10000 and resp.done()
    assert resp.readinto(bytearray(10)) == 0
    assert _get(client, _env("FOTA_TEST_NGINX") + "/small.bin").body(20000) == _file("small.bin")
    assert client.connects == 1


def test_status_is_the_callers_to_judge():
    client = _plain()
    for code in (204, 404, 500):
        resp = _get(client, _env("FOTA_TEST_HTTP") + "/status/%d" % code)
        assert resp.status == code
        resp.close()


# -- redirects


def test_redirects_are_followed():
    client = _plain()
    for path in ("/redirect/3/small.bin", "/redirect-abs/2/small.bin", "/redirect-308/1/small.bin"):
        resp = _get(client, _env("FOTA_TEST_HTTP") + path)
        assert resp.status == 200, path
        assert resp.body(20000) == _file("small.bin")
    tag = _tag()
    resp = client.get_range(_env("FOTA_TEST_HTTP") + "/tag/%s/redirect/2/small.bin" % tag, 10, 19)
    assert resp.status == 206 and resp.range_start == 10
    assert resp.body() == _file("small.bin")[10:20]
    assert _stats(tag) == {"connections": 1, "requests": 3}  # redirects on one connection


def test_redirect_limit():
    client = _plain()
    exc = fails(DOWNLOAD, _get, client, _env("FOTA_TEST_HTTP") + "/redirect/4/small.bin")
    assert "redirect" in exc.message
    client = _plain(max_redirects=0)
    fails(DOWNLOAD, _get, client, _env("FOTA_TEST_HTTP") + "/redirect/1/small.bin")
    assert _get(client, _env("FOTA_TEST_HTTP") + "/redirect/0/small.bin").status == 200


def test_credentials_do_not_follow_a_redirect_to_another_origin():
    client = _plain()
    headers = {"Authorization": "secret", "password": "aliyun-token", "X-Other": "1"}
    same = _env("FOTA_TEST_HTTP") + "/redirect-abs/1/echo"  # Location: http://127.0.0.1:PORT/...
    echo = _get(client, same, headers=headers).json()
    assert _header(echo, "Authorization") == "secret" and _header(echo, "X-Other") == "1"
    assert _header(echo, "password") == "aliyun-token"
    other = same.replace("127.0.0.1", "localhost")  # the same server under another host name
    echo = _get(client, other, headers=headers).json()
    assert echo["method"] == "GET"  # the redirect was followed, without any of the headers
    for name in headers:
        assert _header(echo, name) is None, name
    # a body (Aliyun's signed /auth) is never sent to another origin
    post = other.replace("/redirect-abs/", "/redirect-abs-307/")
    exc = fails(PROTOCOL, client.request, "POST", post, body=b"sign=abc")
    assert "another origin" in exc.message


def test_error_messages_show_no_password_and_no_signed_query():
    client = http.Client(allow_http=False)
    url = "http://127.0.0.1:1/ota?ak=AK&sign=SIGNATURE"
    exc = fails(CONFIG, _get, client, url)
    assert "SIGNATURE" not in exc.message and "http://127.0.0.1:1/ota?***" in exc.message
    exc = fails(CONFIG, _get, _plain(), "http://user:pa55word@127.0.0.1:1/x?t=TOKEN")
    assert "pa55word" not in exc.message and "TOKEN" not in exc.message
    assert "***@127.0.0.1:1/x" in exc.message
    exc = fails(CONFIG, _get, _plain(), "ftp://user:pa55word@host/x")
    assert "pa55word" not in exc.message


def test_redirect_303_turns_post_into_get_and_307_keeps_it():
    client = _plain()
    echo = client.request(
        "POST", _env("FOTA_TEST_HTTP") + "/redirect-303/1/echo", json={"a": 1}
    ).json()
    assert echo["method"] == "GET" and echo["body_len"] == 0
    echo = client.request(
        "POST", _env("FOTA_TEST_HTTP") + "/redirect-307/1/echo", body=b"abc"
    ).json()
    assert echo["method"] == "POST" and echo["body"] == "abc"


# -- what the client sends


def _header(echo, name):
    values = [v for n, v in echo["headers"] if n.lower() == name.lower()]
    assert len(values) <= 1, values
    return values[0] if values else None


def test_post_and_put_send_json_and_bytes():
    client = _plain()
    base = _env("FOTA_TEST_HTTP")
    echo = _send(client, "POST", base + "/echo", json={"state": 2, "name": "ota"}).json()
    assert echo["method"] == "POST" and echo["version"] == "HTTP/1.1"
    assert _header(echo, "Content-Type") == "application/json"
    assert _header(echo, "Content-Length") == str(echo["body_len"])
    import json

    assert json.loads(echo["body"]) == {"state": 2, "name": "ota"}
    body = bytes(range(32, 128)) * 8  # ASCII: MicroPython's str has no latin-1 to compare with
    resp = client.request(
        "PUT", base + "/echo?x=1", headers={"Authorization": "t0ken", "X-N": 7}, body=body
    )
    echo = resp.json(8192)
    assert echo["method"] == "PUT" and echo["target"] == "/echo?x=1"
    assert echo["body_len"] == 768 and echo["body"] == body.decode()
    assert _header(echo, "Authorization") == "t0ken" and _header(echo, "X-N") == "7"
    assert _header(echo, "Host") == base.split("//")[1]
    assert _header(echo, "Content-Type") is None and _header(echo, "Range") is None
    echo = _get(client, base + "/echo").json()
    assert echo["method"] == "GET" and _header(echo, "Content-Length") is None
    fails(CONFIG, _get, client, base + "/echo", {"X-Evil": "a\r\nInjected: 1"})


def test_long_request_heads_are_sent_whole():
    client = _plain()
    value = "v" * 900  # more than the 512-byte buffer: sent in pieces
    echo = _get(client, _env("FOTA_TEST_HTTP") + "/echo", headers={"X-Big": value}).json()
    assert _header(echo, "X-Big") == value


def test_headers_named_by_the_caller_are_kept():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/manyheaders/5", keep=("X-Many-3",))
    assert resp.header("x-many-3") == "v" and resp.header("X-Many-2") is None
    assert resp.body() == b"many headers\n"
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/manyheaders/5")
    assert resp.header("x-many-3") is None


# -- ranges


def test_range_206_against_nginx():
    client = _plain()
    target = _env("FOTA_TEST_NGINX") + "/small.bin"
    data = _file("small.bin")
    for start, end in ((0, 99), (5000, 5000), (9000, 20000), (9990, None)):
        resp = client.get_range(target, start, end)
        assert resp.status == 206
        last = 9999 if end is None or end > 9999 else end  # nginx clamps the end
        assert (resp.range_start, resp.range_end, resp.range_total) == (start, last, 10000)
        assert resp.length == last - start + 1
        assert resp.body(20000) == data[start : last + 1]
    assert client.connects == 1


def test_range_416_when_unsatisfiable():
    client = _plain()
    resp = client.get_range(_env("FOTA_TEST_NGINX") + "/small.bin", 10000, 10099)
    assert resp.status == 416
    assert (resp.range_start, resp.range_end, resp.range_total) == (None, None, 10000)
    resp.body()
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/small.bin")
    assert resp.status == 200 and resp.range_total is None
    resp.close()
    fails(CONFIG, client.get_range, _env("FOTA_TEST_NGINX") + "/small.bin", 10, 9)


def test_bare_range_syntax():
    client = _plain()
    echo = client.get_range(_env("FOTA_TEST_HTTP") + "/echo", 0, 99, bare=True).json()
    assert _header(echo, "Range") == "0-99"
    echo = client.get_range(_env("FOTA_TEST_HTTP") + "/echo", 0, 99).json()
    assert _header(echo, "Range") == "bytes=0-99"
    echo = client.get_range(_env("FOTA_TEST_HTTP") + "/echo", 123456789, None).json()
    assert _header(echo, "Range") == "bytes=123456789-"
    resp = client.get_range(_env("FOTA_TEST_HTTP") + "/small.bin", 100, 199, bare=True)
    assert resp.status == 206 and resp.range_end == 199
    assert resp.body() == _file("small.bin")[100:200]


def test_range_answers_are_reported_not_judged():
    client = _plain()
    base = _env("FOTA_TEST_HTTP")
    resp = client.get_range(base + "/ignore-range/small.bin", 100, 199)
    assert resp.status == 200 and resp.range_start is None and resp.length == 10000
    resp.close()
    resp = client.get_range(base + "/bad-range/small.bin", 100, 199)
    assert resp.status == 206
    assert (resp.range_start, resp.range_end, resp.range_total) == (101, 200, 10000)
    resp.close()
    fails(PROTOCOL, client.get_range, base + "/malformed-range/small.bin", 0, 9)


class _Fields:
    range_start = range_end = range_total = "unset"


def _content_range(text):
    fields = _Fields()
    data = bytearray(text)
    http._content_range(fields, data, 0, len(data))
    return fields.range_start, fields.range_end, fields.range_total


def test_content_range_parsing_is_strict():
    assert _content_range(b"bytes 0-99/10000") == (0, 99, 10000)
    assert _content_range(b"BYTES 5-5/6") == (5, 5, 6)
    assert _content_range(b"bytes 0-99/*") == (0, 99, None)
    assert _content_range(b"bytes */10000") == (None, None, 10000)
    for bad in (
        b"bytes 0-99",
        b"bytes 99-0/100",
        b"bytes 0-100/100",
        b"bytes */*",
        b"bytes -1-5/10",
        b"bytes 0-x/10",
        b"items 0-9/10",
        b"bytes 0-9/1O",
        b"bytes=0-9/10",
    ):
        fails(PROTOCOL, _content_range, bad)


# -- keep-alive


def test_keep_alive_reuses_one_connection():
    tag = _tag()
    client = _plain()
    target = _env("FOTA_TEST_HTTP") + "/tag/%s/medium.bin" % tag
    for i in range(6):
        resp = client.get_range(target, i * 1000, i * 1000 + 999)
        assert resp.status == 206 and len(resp.body()) == 1000
    assert client.connects == 1 and client.requests == 6
    assert _stats(tag) == {"connections": 1, "requests": 6}

    accepts, requests = _nginx_status()
    client = _plain()
    for i in range(4):
        resp = client.get_range(_env("FOTA_TEST_NGINX") + "/medium.bin", i * 10, i * 10 + 9)
        assert resp.body() == _slice("medium.bin", i * 10, 10)
    assert client.connects == 1
    accepts2, requests2 = _nginx_status()
    assert accepts2 - accepts == 2  # this client's connection and the second status request's
    assert requests2 - requests == 5


def test_unfinished_body_or_connection_close_means_a_new_connection():
    tag = _tag()
    client = _plain()
    base = _env("FOTA_TEST_HTTP") + "/tag/" + tag
    resp = _get(client, base + "/medium.bin")
    resp.readinto(bytearray(100))  # the rest of the body is abandoned
    resp = _get(client, base + "/close/small.bin")
    assert resp.body(20000) == _file("small.bin")
    resp = _get(client, base + "/small.bin")
    assert resp.body(20000) == _file("small.bin")
    assert client.connects == 3
    assert _stats(tag) == {"connections": 3, "requests": 3}


def test_reconnect_after_the_server_closed_a_kept_alive_connection():
    tag = _tag()
    client = _plain()
    base = _env("FOTA_TEST_HTTP") + "/tag/" + tag
    assert _get(client, base + "/hangup/small.bin").body(20000) == _file("small.bin")
    resp = client.request(
        "GET", base + "/small.bin"
    )  # the kept connection is dead: one new attempt
    assert resp.status == 200 and resp.body(20000) == _file("small.bin")
    assert client.connects == 2
    assert _stats(tag) == {"connections": 2, "requests": 2}


# -- failures


def test_connection_dropped_mid_body_is_a_download_error():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/drop/5000/small.bin")
    assert resp.status == 200 and resp.length == 10000
    exc = fails(DOWNLOAD, _read_all, resp)
    assert "5000" in exc.message
    assert resp.readinto(bytearray(10)) == 0  # the response is over
    assert _get(client, _env("FOTA_TEST_HTTP") + "/small.bin").status == 200


def test_stalled_server_times_out_within_the_read_timeout():
    for base in ("FOTA_TEST_HTTP", "FOTA_TEST_HTTPS"):
        client = http.Client(ca=_ca(), allow_http=True, read_timeout=0.3)
        resp = _get(client, _env(base) + "/stall/1000/small.bin")
        start = _ms()
        exc = fails(TIMEOUT, _read_all, resp)
        elapsed = _since_ms(start)
        assert 250 <= elapsed < 2000, elapsed
        assert "timed out" in exc.message
        start = _ms()
        fails(TIMEOUT, _get, client, _env(base) + "/silent")
        assert 250 <= _since_ms(start) < 2000


def test_a_head_sent_byte_by_byte_ends_at_the_deadline():
    # One byte every 40 ms: each wait is far below the read timeout, and the whole head (about
    # 90 bytes) would take over 3 s; the request's deadline ends it.
    client = _plain(read_timeout=5, deadline=0.3)
    start = _ms()
    exc = fails(TIMEOUT, _get, client, _env("FOTA_TEST_HTTP") + "/drip-head/40/small.bin")
    assert 250 <= _since_ms(start) < 2500, _since_ms(start)
    assert "0.3 s deadline" in exc.message and exc.retryable
    assert client.response.done()  # the connection is closed, the next request opens another
    assert _get(client, _env("FOTA_TEST_HTTP") + "/small.bin").body(20000) == _file("small.bin")
    assert client.connects == 2


def test_a_body_sent_byte_by_byte_ends_at_the_deadline():
    client = _plain(read_timeout=5, deadline=0.4)
    start = _ms()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/drip/20/4000/small.bin")
    exc = fails(TIMEOUT, _read_all, resp)
    assert 350 <= _since_ms(start) < 2500, _since_ms(start)
    assert exc.retryable and "deadline" in exc.message


def test_the_deadline_is_per_request():
    # each request of a kept-alive connection gets the whole deadline again
    # (five answers of about 0.2 s each: together over the 0.8 s deadline, each well within)
    client = _plain(deadline=0.8)
    for _ in range(5):
        resp = _get(client, _env("FOTA_TEST_HTTP") + "/drip/20/9990/small.bin")
        assert _read_all(resp) == _file("small.bin")  # the last 10 bytes dripped
    assert client.connects == 1


def test_the_etag_is_kept_and_forgotten_with_its_response():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/small.bin")
    tag = resp.etag
    assert tag is not None and tag.startswith('"') and tag.endswith('"'), tag
    assert resp.body(20000) == _file("small.bin")
    assert _get(client, _env("FOTA_TEST_NGINX") + "/medium.bin").etag not in (None, tag)
    client.response.close()
    assert _get(client, _env("FOTA_TEST_HTTP") + "/small.bin").etag is None  # none sent


def test_interim_answers_are_bounded():
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/continue/3/small.bin")
    assert resp.status == 200 and resp.body(20000) == _file("small.bin")
    exc = fails(PROTOCOL, _get, client, _env("FOTA_TEST_HTTP") + "/continue/9/small.bin")
    assert "more than 8 interim (1xx) answers" in exc.message
    fails(PROTOCOL, _get, client, _env("FOTA_TEST_HTTP") + "/continue/forever/small.bin")


def test_connect_failure_is_a_download_error():
    client = _plain(connect_timeout=1)
    exc = fails(DOWNLOAD, _get, client, "http://127.0.0.1:1/x")  # nothing listens there
    assert "127.0.0.1:1" in exc.message
    assert "network error: connect to 127.0.0.1:1: ECONNREFUSED" in exc.message, exc.message
    assert client.connects == 0


def test_header_limits():
    client = _plain()
    base = _env("FOTA_TEST_HTTP")
    assert _get(client, base + "/longheader/512").body() == b"long header\n"
    exc = fails(PROTOCOL, _get, client, base + "/longheader/513")
    assert "512" in exc.message
    fails(PROTOCOL, _get, client, base + "/longheader")
    resp = _get(client, base + "/manyheaders/31")  # with Content-Length: 32 header lines
    assert resp.body() == b"many headers\n"
    exc = fails(PROTOCOL, _get, client, base + "/manyheaders/32")
    assert "32" in exc.message
    fails(PROTOCOL, _get, client, base + "/manyheaders")


def test_malformed_answers_are_protocol_errors():
    client = _plain()
    base = _env("FOTA_TEST_HTTP")
    exc = fails(PROTOCOL, _get, client, base + "/garbage")
    assert "status line" in exc.message
    exc = fails(PROTOCOL, _get, client, base + "/bad-length")
    assert "Content-Length" in exc.message
    resp = _get(client, base + "/bad-chunk")
    exc = fails(PROTOCOL, resp.readinto, bytearray(100))
    assert "chunk" in exc.message
    assert _get(client, base + "/small.bin").status == 200  # the client recovers


# -- the download engine's fast path


def test_direct_reads_the_rest_of_a_length_body_from_the_socket():
    client = _plain()
    target = _env("FOTA_TEST_NGINX") + "/medium.bin"
    buf = bytearray(4096)
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/small.bin")  # head and body in one send
    assert resp.direct() is None  # the body bytes that came with the head must go first
    assert resp.body(10000) == _file("small.bin")
    client = _plain()
    resp = client.get_range(target, 1000, 300000 - 1)
    f = open(_path("medium.bin"), "rb")
    try:
        f.seek(1000)
        got = resp.readinto(buf)
        assert buf[:got] == f.read(got)
        read = resp.direct()
        if sys.implementation.name != "micropython":
            assert read is None  # CPython: recv_into returns what arrived, readinto() is the way
            read, taken = resp.readinto, None
        else:
            assert read is not None
            taken = resp.taken
        while got < 299000:  # never more than the body holds: a blocking readinto waits for it
            n = read(memoryview(buf)[: min(4096, 299000 - got)])
            assert n > 0
            if taken:
                taken(n)
            assert buf[:n] == f.read(n), got
            got += n
    finally:
        f.close()
    assert resp.done() and resp.readinto(buf) == 0
    resp = client.get_range(target, 0, 9)  # the connection was kept
    assert resp.body() == _slice("medium.bin", 0, 10) and client.connects == 1
    resp = _get(client, _env("FOTA_TEST_HTTP") + "/chunked/small.bin")
    resp.readinto(buf)
    resp.readinto(buf)
    assert resp.direct() is None  # chunked bodies need their framing read
    resp.close()


def test_direct_readers_errors_are_translated_and_close_the_connection():
    import errno

    client = _plain()
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/medium.bin")
    resp.readinto(bytearray(100))
    exc = resp.failed(OSError(errno.ETIMEDOUT))
    assert exc.reason == TIMEOUT and exc.message.startswith("timed out: body from ")
    assert resp.done() and _get(client, _env("FOTA_TEST_NGINX") + "/small.bin").status == 200
    assert client.connects == 2
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/small.bin")
    exc = resp.failed(OSError(errno.ECONNRESET))
    assert exc.reason == DOWNLOAD and "network error" in exc.message


# -- TLS and policy


def test_https_with_the_right_ca_and_host_name():
    client = http.Client(ca=_ca())
    resp = _get(client, _env("FOTA_TEST_NGINX_TLS") + "/small.bin")
    assert resp.status == 200 and resp.body(20000) == _file("small.bin")
    resp = client.get_range(_env("FOTA_TEST_NGINX_TLS") + "/medium.bin", 1000, 1999)
    assert resp.status == 206 and resp.range_start == 1000
    resp.close()
    resp = _get(client, _env("FOTA_TEST_HTTPS") + "/chunked/small.bin")
    assert resp.body(20000) == _file("small.bin")
    assert client.connects == 2


def test_https_with_a_wrong_ca_fails():
    client = http.Client(ca=_ca("wrong-ca.der"))
    exc = fails(DOWNLOAD, _get, client, _env("FOTA_TEST_NGINX_TLS") + "/small.bin")
    assert "TLS verification" in exc.message


def test_https_with_a_wrong_host_name_fails():
    client = http.Client(ca=_ca())
    wrong = _env("FOTA_TEST_NGINX_TLS").replace("localhost", "127.0.0.1")
    exc = fails(DOWNLOAD, _get, client, wrong + "/small.bin")
    assert "TLS verification" in exc.message and "127.0.0.1" in exc.message


def test_https_with_an_expired_or_self_signed_certificate_fails():
    for env in ("FOTA_TEST_TLS_EXPIRED", "FOTA_TEST_TLS_SELF_SIGNED"):
        client = http.Client(ca=_ca())
        exc = fails(DOWNLOAD, _get, client, _env(env) + "/small.bin")
        assert "TLS verification" in exc.message, (env, exc.message)
    # the same servers' files are fine over the verified server: the certificate is the fault
    assert _get(http.Client(ca=_ca()), _env("FOTA_TEST_NGINX_TLS") + "/small.bin").status == 200


def test_https_without_a_ca_is_a_config_error():
    client = http.Client(allow_http=True)
    exc = fails(CONFIG, _get, client, _env("FOTA_TEST_NGINX_TLS") + "/small.bin")
    assert "CA" in exc.message
    assert client.connects == 0  # refused before any connection
    fails(CONFIG, _get, http.Client(ca=b"not a certificate"), _env("FOTA_TEST_NGINX_TLS"))


def test_plain_http_only_when_allowed():
    client = http.Client(ca=_ca())
    fails(CONFIG, _get, client, _env("FOTA_TEST_NGINX") + "/small.bin")
    assert client.connects == 0
    exc = fails(CONFIG, _get, client, _env("FOTA_TEST_NGINX_TLS") + "/to-plain/small.bin")
    assert "allow_http" in exc.message  # a redirect from https to http is refused too
    client = http.Client(ca=_ca(), allow_http=True)
    resp = _get(client, _env("FOTA_TEST_NGINX_TLS") + "/to-plain/small.bin")
    assert resp.status == 200 and resp.body(20000) == _file("small.bin")
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/to-tls/small.bin")
    assert resp.status == 200 and resp.body(20000) == _file("small.bin")


# -- memory


def _mix(acc, buf, n):
    # a checksum that allocates nothing (the loop below runs under heap_lock)
    for i in range(n):
        acc = (acc * 31 + buf[i]) & 0xFFFFFF
    return acc


def test_body_read_loop_allocates_nothing():
    expect = 0
    chunk = bytearray(4096)
    with open(_path("medium.bin"), "rb") as f:
        while True:
            n = f.readinto(chunk)
            if not n:
                break
            expect = _mix(expect, chunk, n)
    client = _plain()
    resp = _get(client, _env("FOTA_TEST_NGINX") + "/medium.bin")
    buf = bytearray(2048)
    gc.collect()
    total = resp.readinto(buf)  # the bytes that came with the head: one copy, may allocate
    acc = _mix(0, buf, total)
    failed = None
    micropython.heap_lock()
    try:
        while True:
            n = resp.readinto(buf)
            if n == 0:
                break
            acc = _mix(acc, buf, n)
            total += n
    except (MemoryError, OTAError) as exc:
        failed = exc
    finally:
        micropython.heap_unlock()
    assert failed is None, "the body loop allocated: %r" % (failed,)
    assert total == 300000 and acc == expect
    assert resp.done() and client.connects == 1


def test_keep_alive_range_request_costs_little_memory():
    client = _plain()
    target = _env("FOTA_TEST_NGINX") + "/medium.bin"
    buf = bytearray(1000)
    costs = []
    for i in range(6):
        gc.collect()
        before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        resp = client.get_range(target, i * 1000, i * 1000 + 999)
        after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        costs.append(after - before)
        assert resp.readinto(buf) > 0
        while resp.readinto(buf):
            pass
    assert client.connects == 1
    if sys.implementation.name == "micropython":
        worst = max(costs[2:])  # after warm-up
        assert worst <= REQUEST_ALLOC_BOUND, costs


def test_a_cloud_call_answered_with_an_error_page_names_the_status_and_the_path():
    from fota.clouds.base import call

    client = _plain()
    base = _env("FOTA_TEST_HTTP")
    exc = fails(PROTOCOL, call, client, "GET", base + "/status/404?sign=SECRET")
    assert "HTTP 404" in exc.message and "/status/404?***" in exc.message
    assert "SECRET" not in exc.message and "JSON" not in exc.message
    exc = fails(DOWNLOAD, call, client, "GET", base + "/status/503")
    assert exc.retryable and "HTTP 503" in exc.message and "/status/503" in exc.message
    exc = fails(PROTOCOL, call, client, "GET", base + "/status/200")  # 2xx, but no JSON
    assert "not valid JSON" in exc.message or "not JSON" in exc.message, exc.message
