# tools/emu/control.py: the control API under /_emu/ (JSON, no auth, never recorded).
#
#   GET /_emu (or /_emu/), /_emu/state, /_emu/log[?since=N];
#   POST /_emu/reset, /_emu/fault, /_emu/clock, /_emu/task.
# Shapes are documented in tools/emulator.py. A refused request is 400 {"error": message}.

from aiohttp import web

from .records import ControlError, EmuError, Fault


def add_routes(router, emu):
    """Add the control routes of Emulator `emu` to an aiohttp router."""
    control = _Control(emu)
    router.add_route("GET", "/_emu", control.info)
    router.add_route("GET", "/_emu/", control.info)
    router.add_route("GET", "/_emu/state", control.state)
    router.add_route("GET", "/_emu/log", control.log)
    for name in ("reset", "fault", "clock", "task"):
        router.add_route("POST", "/_emu/" + name, control.post(getattr(control, name)))
    router.add_route("*", "/_emu/{tail:.*}", control.unknown)


class _Control:
    def __init__(self, emu):
        self.emu = emu

    def post(self, fn):
        async def run(request):
            try:
                body = await request.json() if await request.read() else {}
            except ValueError:
                return _answer({"error": "the body is not JSON"}, 400)
            try:
                return _answer(fn(body))
            except EmuError as exc:
                return _answer({"error": str(exc)}, 400)

        return run

    async def info(self, request):
        emu = self.emu
        info = {"cloud": emu.cloud, "endpoints": list(emu.ENDPOINTS)}
        info.update(emu.info())
        return _answer(info)

    async def state(self, request):
        return _answer(self.emu.state())

    async def log(self, request):
        since = request.query.get("since", "0")
        if not since.isdigit():
            return _answer({"error": "since must be a request index"}, 400)
        return _answer(self.emu.log[int(since) :])

    async def unknown(self, request):
        return _answer({"error": "no control endpoint %s" % request.path}, 404)

    def reset(self, body):
        return self.emu.reset(body)

    def fault(self, body):
        emu = self.emu
        emu.faults.append(Fault(body, emu.ENDPOINTS, emu.FAULT_KINDS))
        return {"faults": [f.describe() for f in emu.faults]}

    def clock(self, body):
        offset = body.get("offset_s") if isinstance(body, dict) else None
        if type(offset) not in (int, float):
            raise ControlError('clock takes {"offset_s": seconds}')
        self.emu.offset = float(offset)
        return {"offset_s": self.emu.offset, "now": int(self.emu.now())}

    def task(self, body):
        emu = self.emu
        state = body.get("state") if isinstance(body, dict) else None
        if state not in emu.TASK_STATES:
            raise ControlError("task state must be one of %s" % ", ".join(emu.TASK_STATES))
        emu.set_task_state(state)
        return emu.state()


def _answer(obj, status=200):
    return web.json_response(obj, status=status)
