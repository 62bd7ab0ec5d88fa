# The device side of `make bench`: runs on the MicroPython unix port, one measurement per run.
#
# usage: micropython bench_device.py MODE URL SIZE MD5 FLASH CHUNK WORKDIR [lock] [no-image-sha]
#   MODE bare     socket readinto loop, data discarded: the I/O limit of this machine
#   MODE minimal  readinto + MD5 update + writeblocks into the slot: the work limit
#   MODE engine   fota's Downloader end to end (Range requests, keep-alive, journal, slot
#                 writer, image checks, set_boot) for an offer carrying an MD5
# Prints "RESULT MODE BYTES MICROSECONDS ALLOCATED CHUNKS [LOCKED]". sys.path must hold the agent
# (firmware/ or its .mpy build) and host_tests/shims (set by the caller through MICROPYPATH).

import binascii
import gc
import hashlib
import socket
import sys
import time

import esp32


def _connect(url):
    hostport = url.split("/")[2]
    host, port = hostport.split(":")
    path = "/" + "/".join(url.split("/")[3:])
    addr = socket.getaddrinfo(host, int(port))[0][-1]
    sock = socket.socket()
    sock.connect(addr)
    sock.write(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: " + hostport.encode() + b"\r\n\r\n")
    while True:  # skip the response head
        line = sock.readline()
        if not line or line == b"\r\n":
            break
    return sock


def bare(url, size, chunk):
    mv = memoryview(bytearray(chunk))
    sock = _connect(url)
    got = 0
    t0 = time.ticks_us()
    while True:
        n = sock.readinto(mv)
        if not n:
            break
        got += n
    dt = time.ticks_diff(time.ticks_us(), t0)
    sock.close()
    return got, dt


def minimal(url, size, chunk, part):
    # The unavoidable work, nothing else: the chunk is one block, written with the erase form.
    mv = memoryview(bytearray(chunk))
    sock = _connect(url)
    h = hashlib.md5()
    got = 0
    block = 0
    per = chunk // 4096
    t0 = time.ticks_us()
    while got < size:
        n = sock.readinto(mv)
        if not n:
            break
        got += n
        if n < chunk:  # the last piece
            h.update(mv[:n])
            for i in range(n, chunk):
                mv[i] = 0xFF
        else:
            h.update(mv)
        part.writeblocks(block, mv)
        block += per
    binascii.hexlify(h.digest())
    dt = time.ticks_diff(time.ticks_us(), t0)
    sock.close()
    return got, dt


def engine(url, size, md5, chunk, workdir, lock, image_sha=True):
    from fota.download import Downloader
    from fota.esp32slot import Esp32Slot
    from fota.http import Client
    from fota.journal import Journal
    from fota.offer import Offer

    count = [0, 0, 0]  # mem_alloc() at the start, bytes allocated until set_boot, its start

    class Slot(Esp32Slot):
        # set_boot is ESP-IDF's C code on a device, emulated in Python here: not the agent's
        # allocation, so counting stops (and the collector comes back) before it runs.
        def activate(self):
            count[1] = gc.mem_alloc() - count[0]
            count[2] = time.ticks_us()
            gc.enable()
            super().activate()

    offer = Offer(url, size, md5=md5)
    client = Client(allow_http=True)
    dl = Downloader(
        client, Slot("esp32"), Journal(workdir + "/bench.journal"), time,
        chunk=chunk, lock_heap=lock, image_sha=image_sha,
    )  # fmt: skip
    gc.collect()
    count[0] = gc.mem_alloc()
    gc.disable()  # so that mem_alloc() counts everything the agent allocates
    t0 = time.ticks_us()
    result = dl.run(offer)
    dt = time.ticks_diff(count[2], t0)  # until set_boot: ESP-IDF's code, not the agent's
    gc.enable()
    client.close()
    return result.size, dt, count[1], dl.pumped_locked


def main(argv):
    mode, url, size, md5, flash, chunk, workdir = argv[1:8]
    size = int(size)
    chunk = int(chunk)
    lock = "lock" in argv[8:]
    esp32.attach(flash, "esp32", "ota_0")
    part = esp32.Partition("ota_1")
    allocated = locked = 0
    if mode == "bare":
        got, dt = bare(url, size, chunk)
    elif mode == "minimal":
        got, dt = minimal(url, size, chunk, part)
    else:
        got, dt, allocated, locked = engine(
            url, size, md5, chunk, workdir, lock, "no-image-sha" not in argv[8:]
        )
    chunks = (got + chunk - 1) // chunk
    print("RESULT", mode, got, dt, allocated, chunks, locked)


main(sys.argv)
