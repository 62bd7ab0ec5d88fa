# fota.clouds: one module per cloud (onenet, onenet_fuse, sagoo, ...), each turning its cloud's
# device API into offers and the agent's events into that cloud's reports. See base.py.
