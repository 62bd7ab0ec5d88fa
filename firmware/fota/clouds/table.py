# The clouds this build of the agent speaks, in one table: the config's "cloud" name, the module
# in this package, its class, and the config section it reads. Read at start-up only (the config
# check keeps the chosen row); a check or a settlement loads just the chosen cloud's module. The
# table is text, split when read: names in code would be interned on the heap for good.

from micropython import const

_CLOUDS = const(
    "onenet:onenet:OneNet:onenet onenet-fuse:onenet_fuse:OneNetFuse:onenet"
    " sagoo:sagoo:Sagoo:sagoo aliyun:aliyun:Aliyun:aliyun mxchip:mxchip:Mxchip:mxchip"
)


def names():
    return ", ".join(row.partition(":")[0] for row in _CLOUDS.split())


def entry(name):
    """The table's row for cloud `name`, (name, module, class, section); an OTAError (config)
    naming the known ones if none."""
    for row in _CLOUDS.split():
        row = tuple(row.split(":"))
        if row[0] == name:
            return row
    from fota.core.errors import CONFIG, OTAError

    raise OTAError(CONFIG, "ota.json: cloud must be one of %s, got %r" % (names(), name))
