# ssl for MicroPython builds that only have `tls` (Debian's unix port). Board firmware freezes a
# thin `ssl` module over `tls` whose SSLContext takes load_verify_locations(cafile=, cadata=);
# this gives the agent the same names, so `import ssl` behaves as on a board.
import tls
from tls import *  # noqa: F403


class SSLContext:
    def __init__(self, *args):
        self._ctx = tls.SSLContext(*args)

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, value):
        self._ctx.verify_mode = value

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile:
            with open(cafile, "rb") as f:
                cadata = f.read()
        self._ctx.load_verify_locations(cadata)

    def load_cert_chain(self, certfile, keyfile):
        self._ctx.load_cert_chain(certfile, keyfile)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    server_hostname=None):  # fmt: skip
        return self._ctx.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname,
        )
