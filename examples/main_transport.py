# main.py for a board that makes its own network connections: the agent's HTTP client asks
# Stream(host, port, tls) for each connection instead of opening a socket. On an nRF9160 this is
# where the modem's offloaded sockets and its TLS (with the modem's credentials) come in; this
# one uses a plain socket and refuses TLS. The README's "MCUboot boards" has the contract.
import socket

from fota.app import agent


class Stream:
    def __init__(self, host, port, tls):
        if tls:
            raise OSError(95)  # EOPNOTSUPP: set up the modem's TLS here
        self.s = socket.socket()
        self.s.connect(socket.getaddrinfo(host, port)[0][-1])

    def settimeout(self, seconds):
        self.s.settimeout(seconds)

    def readinto(self, buf, n):
        data = self.s.recv(n)  # up to n bytes, at least one unless the connection ended
        buf[: len(data)] = data
        return len(data)

    def write(self, buf):
        return self.s.write(buf)

    def close(self):
        self.s.close()


agent.transport(Stream)
agent.main()
