# The clouds this build of the agent speaks, in one table: the config's "cloud" name, the module
# in this package, its class, and the config section it reads. Only the configured one is loaded.

CLOUDS = (
    ("onenet", "onenet", "OneNet", "onenet"),
    ("onenet-fuse", "onenet_fuse", "OneNetFuse", "onenet"),
    ("sagoo", "sagoo", "Sagoo", "sagoo"),
    ("aliyun", "aliyun", "Aliyun", "aliyun"),
    ("mxchip", "mxchip", "Mxchip", "mxchip"),
)


def entry(name):
    """The table's row for cloud `name`, or None."""
    for row in CLOUDS:
        if row[0] == name:
            return row
    return None


def load(name):
    """The class of cloud `name` (imports only its module)."""
    row = entry(name)
    mod = __import__("fota.clouds." + row[1], None, None, (row[2],))
    return getattr(mod, row[2])
