# The clouds this build of the agent speaks, in one table: the config's "cloud" name, the module
# in this package, its class, and the config section it reads. Read at start-up only (the config
# check keeps the chosen row); a check or a settlement loads just the chosen cloud's module.

CLOUDS = (
    ("onenet", "onenet", "OneNet", "onenet"),
    ("onenet-fuse", "onenet_fuse", "OneNetFuse", "onenet"),
    ("sagoo", "sagoo", "Sagoo", "sagoo"),
    ("aliyun", "aliyun", "Aliyun", "aliyun"),
    ("mxchip", "mxchip", "Mxchip", "mxchip"),
)


def names():
    return ", ".join(row[0] for row in CLOUDS)


def entry(name):
    """The table's row for cloud `name`; an OTAError (config) naming the known ones if none."""
    for row in CLOUDS:
        if row[0] == name:
            return row
    from fota.core.errors import CONFIG, OTAError

    raise OTAError(CONFIG, "ota.json: cloud must be one of %s, got %r" % (names(), name))
