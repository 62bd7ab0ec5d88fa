# The device side of `make bench`: runs on the MicroPython unix port, one measurement per run.
#
# usage: micropython -m bench_device MODE URL SIZE MD5 FLASH CHUNK WORKDIR [FLAG ...]
#   MODE bare     socket readinto loop, data discarded: the I/O limit of this machine
#   MODE minimal  readinto + MD5 update + writeblocks into the slot: the work limit
#                 (FLAG sha: also a SHA-256 of every byte, the work of the image's hash check)
#   MODE engine   fota's Downloader end to end (Range requests, keep-alive, journal, slot
#                 writer, image checks, set_boot) for an offer carrying an MD5
#                 (FLAG lock: heap-locked pumps; image-sha: image_sha=True; count: the
#                 collector off, so that mem_alloc() counts every byte the agent allocates;
#                 noboot: stop at the call of set_boot, ESP-IDF's code on a device)
#   MODE shims    what the host adds around the agent, alone: this script and the esp32
#                 stand-in (C code on a device) with its set_boot (or noboot)
#   MODE imports  the stand-in and the agent's modules loaded, nothing else: the agent's code
# Prints "RESULT MODE BYTES MICROSECONDS ALLOCATED CHUNKS LOCKED SHIMS AGENT": SHIMS the bytes
# the esp32 stand-in keeps on the heap, AGENT those of the agent's loaded modules. sys.path must
# hold the agent (firmware/ or its .mpy build) and an `esp32` module with attach(path, chip,
# running): tools/bench_rt's lean one or tools/devices' faithful one (the caller sets
# MICROPYPATH).

import binascii
import gc
import hashlib
import socket
import sys
import time


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


def minimal(url, size, chunk, part, sha=False):
    # The unavoidable work, nothing else: the chunk is one block, written with the erase form.
    mv = memoryview(bytearray(chunk))
    sock = _connect(url)
    h = hashlib.md5()
    h2 = hashlib.sha256() if sha else None
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
            if h2:
                h2.update(mv[:n])
            for i in range(n, chunk):
                mv[i] = 0xFF
        else:
            h.update(mv)
            if h2:
                h2.update(mv)
        part.writeblocks(block, mv)
        block += per
    binascii.hexlify(h.digest())
    if h2:
        h2.digest()
    dt = time.ticks_diff(time.ticks_us(), t0)
    sock.close()
    return got, dt


def engine(url, size, md5, chunk, workdir, flags, memory):
    gc.collect()
    loaded = gc.mem_alloc()
    # The only place the bench names fota's modules: where the firmware's layout moves them,
    # these imports are all that changes (tools/bench.py finds the modules by itself). Every
    # module the run needs is loaded before it is timed, the ones the engine imports only when
    # it gets there (finish, the image check) too: (c) times the pipeline, not the host's file
    # system, and its heap counts them all the same.
    import fota.core.finish  # noqa: F401
    import fota.slots.esp32image  # noqa: F401
    from fota.core.download import Downloader
    from fota.core.journal import Journal
    from fota.core.offer import Offer
    from fota.slots.esp32slot import Esp32Slot
    from fota.transport.http import Client

    gc.collect()
    memory[1] = gc.mem_alloc() - loaded  # the agent's modules, resident
    if "norun" in flags:
        return 0, 0, 0, 0
    count = [0, 0, 0]  # mem_alloc() at the start, bytes allocated until set_boot, its start

    class Slot(Esp32Slot):
        # set_boot is ESP-IDF's C code on a device, emulated in Python here: not the agent's
        # allocation, so counting stops (and the collector comes back) before it runs.
        def activate(self):
            count[1] = gc.mem_alloc() - count[0]
            count[2] = time.ticks_us()
            gc.enable()
            if "noboot" not in flags:
                super().activate()

    offer = Offer(url, size, md5=md5)
    client = Client(allow_http=True)
    engine = _locked(Downloader) if "lock" in flags else Downloader
    dl = engine(
        client, Slot("esp32"), Journal(workdir + "/bench.journal"), time,
        chunk=chunk, image_sha="image-sha" in flags,
    )  # fmt: skip
    gc.collect()
    count[0] = gc.mem_alloc()
    if "count" in flags:
        gc.disable()  # so that mem_alloc() counts everything the agent allocates
    t0 = time.ticks_us()
    result = dl.run(offer)
    dt = time.ticks_diff(count[2], t0)  # until set_boot: ESP-IDF's code, not the agent's
    gc.enable()
    client.close()
    return result.size, dt, count[1], getattr(dl, "pumped_locked", 0)


def _locked(base):
    """The engine with its steady-state pumps under heap_lock(): any allocation there raises."""
    import micropython

    class Locked(base):
        pumped_locked = 0

        def _pump(self, read, stop):
            before = self._written + self._pos
            micropython.heap_lock()
            try:
                base._pump(self, read, stop)
            finally:
                micropython.heap_unlock()
            self.pumped_locked += self._written + self._pos - before

    return Locked


def main(argv):
    mode, url, size, md5, flash, chunk, workdir = argv[1:8]
    flags = argv[8:]
    size = int(size)
    chunk = int(chunk)
    gc.collect()
    before = gc.mem_alloc()
    import esp32

    esp32.attach(flash, "esp32", "ota_0")
    part = esp32.Partition("ota_1")
    gc.collect()
    memory = [gc.mem_alloc() - before, 0]  # the shims, resident; the agent's modules
    allocated = locked = 0
    if mode == "bare":
        got, dt = bare(url, size, chunk)
    elif mode == "minimal":
        got, dt = minimal(url, size, chunk, part, "sha" in flags)
    elif mode == "shims":
        if "noboot" not in flags:
            part.set_boot()  # the image (c) left in the slot
        got, dt = size, 1
    elif mode == "imports":
        engine(url, size, md5, chunk, workdir, flags + ["norun"], memory)
        got, dt = size, 1
    else:
        got, dt, allocated, locked = engine(url, size, md5, chunk, workdir, flags, memory)
    chunks = (got + chunk - 1) // chunk
    print("RESULT", mode, got, dt, allocated, chunks, locked, memory[0], memory[1])


if __name__ == "__main__":
    main(sys.argv)
