# The viper emitter for the pure-Python digests (fota.core.md5, fota.core.sha256), where the
# port has one, and the block-feeding loop and the final padding they share.
#
# A viper function is machine code: a .mpy that holds one is tied to one architecture (mpy-cross
# -march), while the agent ships one arch-neutral set of .mpy files. So the digests keep their
# viper kernels as source text and compile() builds them on the device, once, when the digest
# module is imported (the compiler knows the device's architecture). A port without a native
# emitter says so in sys.implementation._mpy (its architecture bits are 0) and would refuse the
# decorator with a SyntaxError anyway; CPython has no viper at all: compile() then returns None
# and the caller keeps its plain-Python function.

import sys

from micropython import const

_BLOCK = const(64)


def native_arch():
    """The port's native code architecture from sys.implementation._mpy (0: no native emitter,
    1: x86, 2: x64, 7: armv7emsp, 10: xtensawin ...), or None where the port does not say."""
    mpy = getattr(sys.implementation, "_mpy", None)
    return None if mpy is None else mpy >> 10


def compile(source, name, names: dict):  # noqa: A001 - the device's compile() is not needed here
    """The viper function `name` defined by `source`, whose globals are `names` (a dict), or
    None where the port cannot compile viper code. Runs the compiler: call it once, at import."""
    if sys.implementation.name != "micropython" or native_arch() == 0:
        return None  # no compile attempt: it would cost the parse's heap just to fail
    try:
        exec(source, names)
    except (SyntaxError, NotImplementedError, ValueError):  # no native emitter in this build
        return None
    return names[name]


def feed(blocks, ctx, block, fill, data, n):
    """Hash n bytes of data with blocks(ctx, buf, off, end), which folds the 64-byte blocks of
    buf[off:end] into ctx: first the fill bytes waiting in `block`, completed from data, then the
    whole blocks of data in place, then the rest into `block`. Returns the new fill. Copies byte
    by byte instead of slicing, so that it allocates nothing (as long as blocks() does not)."""
    pos = 0
    if fill:
        pos = _BLOCK - fill
        if pos > n:
            pos = n
        for i in range(pos):
            block[fill + i] = data[i]
        fill += pos
        if fill < _BLOCK:
            return fill
        blocks(ctx, block, 0, _BLOCK)
    end = pos + ((n - pos) & -_BLOCK)
    if end > pos:
        blocks(ctx, data, pos, end)
    for i in range(n - end):
        block[i] = data[end + i]
    return n - end


def final(blocks, ctx, block, fill, count, length):
    """The last step MD5 and SHA-256 share: the padding (0x80, zeros, the message's length in bits
    packed with the struct format `length`: "<Q" for MD5, ">Q" for SHA-256) folded by blocks()
    into a copy of ctx, so the hash object stays as it was. -> the copy."""
    import struct
    from array import array

    ctx = array("I", ctx)
    tail = bytearray(2 * _BLOCK)
    tail[:fill] = block[:fill]
    tail[fill] = 0x80
    end = _BLOCK if fill < _BLOCK - 8 else 2 * _BLOCK
    struct.pack_into(length, tail, end - 8, (count << 3) & 0xFFFFFFFFFFFFFFFF)
    blocks(ctx, tail, 0, end)
    return ctx
