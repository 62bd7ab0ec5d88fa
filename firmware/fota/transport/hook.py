# The application's own transport for fota.transport.http, loaded only when one is registered
# (fota.app.agent.transport(fn)): a board whose modem offloads sockets and TLS (an nRF9160's
# LTE modem) hands the client its own connection instead of a socket.
#
# fn(host, port, tls) -> a connected stream with:
#   settimeout(seconds)   the timeout of each following wait
#   readinto(buf, n)      up to n bytes into buf, waiting for at least one; 0 at the end of the
#                         stream; OSError (ETIMEDOUT) when the timeout passes first
#   write(buf)            all of buf
#   close()
# With tls True the stream is TLS already, the server's certificate and name verified by the
# hook (the modem's own credentials). The client reads it as it reads a CPython socket: no poll,
# no direct() fast path for the download. An OSError from fn is a failed connection (retried
# like one); the hook may raise an OTAError of its own.


def attach(client, host, port, tls):
    import fota

    try:
        sock = fota.connect(host, port, tls)  # pyright: ignore[reportOptionalCall]
    except OSError as exc:
        raise client._fail(exc, "connect to %s:%d" % (host, port)) from None
    client.connects += 1
    client._sock = client._raw = sock
    client._recv_into = sock.readinto
    client._write = sock.write
    sock.settimeout(client._cut(client.read_timeout))
    client._wait_ms = int(client.read_timeout * 1000)
    client._origin = (tls, host, port)
    client._pos = client._end = 0
