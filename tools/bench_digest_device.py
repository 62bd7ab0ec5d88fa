# The device side of the digest benchmark (tools/bench_digest.py): runs on the MicroPython unix
# port with the agent's .mpy build on sys.path.
#
# usage: micropython -m bench_digest_device ROUNDS
# Hashes a 4096-byte memoryview over and over with hashlib's md5 and sha256 (C), then with
# fota.core.md5 and fota.core.sha256 on each block function this build can run (viper, plain),
# and prints one line per measurement: "DIGEST ALGORITHM KERNEL BYTES MICROSECONDS". The byte
# counts keep each measurement between a few tens of milliseconds and about a second here.

import hashlib
import sys
import time

from fota.core import md5, sha256

_CHUNK = 4096
_BYTES = {"native": 16 << 20, "viper": 4 << 20, "plain": 256 << 10}


def _time(make, total, mv):
    h = make()
    start = time.ticks_us()
    done = 0
    while done < total:
        h.update(mv)
        done += _CHUNK
    h.digest()
    return time.ticks_diff(time.ticks_us(), start)


def main(rounds):
    mv = memoryview(bytearray(i & 0xFF for i in range(_CHUNK)))
    pure = {"md5": (md5, md5.md5, hashlib.md5), "sha256": (sha256, sha256.sha256, hashlib.sha256)}
    for _ in range(rounds):
        for name in ("md5", "sha256"):
            module, cls, native = pure[name]
            kernels = [("native", native, None)]
            if module.KERNEL == "viper":
                kernels.append(("viper", cls, module._blocks))
            kernels.append(("plain", cls, module._blocks_py))
            chosen = module._blocks
            for kernel, make, blocks in kernels:
                if blocks is not None:
                    module._blocks = blocks
                try:
                    us = _time(make, _BYTES[kernel], mv)
                finally:
                    module._blocks = chosen
                print("DIGEST", name, kernel, _BYTES[kernel], us)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
