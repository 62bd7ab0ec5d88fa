# Runs test functions of one host_tests module on the MicroPython unix port.
#
# usage: micropython [-X heapsize=N] host_tests/mpy_run.py MODULE TEST [TEST ...]
#
# Puts firmware/, tools/devices/ and host_tests/ on sys.path as conftest.py does for CPython
# (and the thin `ssl` over `tls` that a board's firmware freezes, where the build lacks it),
# runs each test function with no arguments and prints one line per test that the pytest plugin
# (conftest.py) reads: "@@fota-test NAME PASS" or "@@fota-test NAME FAIL", the traceback before
# it. Exit status 0 when every test passed.

import sys

_here = sys.argv[0].rpartition("/")[0] or "."
_root = _here + "/.."
for _p in (_root + "/firmware", _root + "/tools/devices", _here):
    sys.path.insert(0, _p)
try:
    import ssl  # noqa: F401
except ImportError:  # a build with only `tls`: add the thin `ssl` a board's firmware freezes
    sys.path.append(_root + "/tools/runtime_shims")

MARK = "@@fota-test"


def main(argv):
    if len(argv) < 3:
        print("usage: micropython mpy_run.py MODULE TEST [TEST ...]")
        return 2
    module = __import__(argv[1])
    failed = 0
    for name in argv[2:]:
        try:
            getattr(module, name)()
        except Exception as exc:  # report every failure, then go on with the next test
            sys.print_exception(exc)
            print(MARK, name, "FAIL")
            failed += 1
        else:
            print(MARK, name, "PASS")
    return 1 if failed else 0


sys.exit(main(sys.argv))
