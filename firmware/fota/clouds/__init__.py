# The clouds layer: one module per cloud API (the list is in table.py). The package itself
# stays empty, so that loading a cloud's module loads nothing else.
