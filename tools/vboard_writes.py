# The virtual board's write log: every flash erase and program of a boot, named by partition.
#
# The esp32 stand-in appends one binary record per operation to the file FOTA_WRITE_TRACE names
# (tools/devices/espflash.py, Flash.trace), before the operation runs, so the last record of a
# boot that a power cut ended is the operation the cut hit. The board's file system sits on the
# same flash, so file writes (the agent's journal and state file) are operations on `vfs`, and
# the bootloader's choice lives in `otadata`. `vboard.py boot --trace-writes FILE` appends one
# JSON line per operation to FILE:
#
#   {"boot": 2, "write": 7, "op": "erase" | "program", "label": "otadata", "offset": 4096,
#    "size": 4096}
#
# write is the operation's number within its boot (1, 2 ...): the K that
# `--power-cut-after-writes K --power-cut-boot B` takes to cut the power there; offset is within
# the partition.

import json
import struct
from pathlib import Path

RECORD = struct.Struct("<III")  # espflash._TRACE_RECORD: op, address, size
OPS = {1: "erase", 2: "program"}
ENV = "FOTA_WRITE_TRACE"


def decode(data, parts, boot):
    """The records of one boot's binary log -> [dict] (see the header); parts: the flash's
    partition table rows (label, type, subtype, offset, size, flags). A torn last record (the
    process died writing it) is dropped."""
    out = []
    for k in range(len(data) // RECORD.size):
        op, addr, size = RECORD.unpack_from(data, k * RECORD.size)
        label, offset = None, addr
        for p in parts:
            if p[3] <= addr < p[3] + p[4]:
                label, offset = p[0], addr - p[3]
                break
        out.append({"boot": boot, "write": k + 1, "op": OPS.get(op, str(op)),
                    "label": label, "offset": offset, "size": size})  # fmt: skip
    return out


class WriteLog:
    """The log of one `boot` run: a binary file per boot in `folder`, decoded after the boot;
    out: the --trace-writes file (None: only the power cut's operation is wanted)."""

    def __init__(self, parts, folder, out=None):
        self.parts = parts
        self.path = Path(folder) / "writes.bin"
        self.out = None if out is None else Path(out)
        if self.out is not None:
            self.out.touch()  # there even when no boot writes anything
        self.last = {}  # the last operation of the boot collected last

    def env(self, wanted):
        """The environment entries that switch the log on for the next boot (or off)."""
        self.path.unlink(missing_ok=True)
        self.last = {}
        return {ENV: str(self.path)} if wanted or self.out is not None else {}

    def collect(self, boot):
        """Read the log of the boot that just ended; append it to the --trace-writes file."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return []
        records = decode(data, self.parts, boot)
        self.last = records[-1] if records else {}
        if self.out is not None and records:
            with self.out.open("a") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")
        return records

    def cut(self):
        """The fields the power_cut event gets: the operation the cut hit."""
        r = self.last
        if not r:
            return {}
        return {"op": r["op"], "label": r["label"], "offset": r["offset"], "size": r["size"]}


def read(path):
    """A --trace-writes file -> [dict], in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
