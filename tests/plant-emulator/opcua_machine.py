"""One machine served over OPC UA by an independent stack (asyncua), the way a machine builder's
controller would present it, written from docs/PLANT-CONTRACT.md ("OPC UA") alone:

    Objects/{machine}/MachineryItemState/CurrentState       LocalizedText, OPC 40001-1 states
    Objects/{machine}/MachineryOperationMode/CurrentState   LocalizedText (Processing, ...)
    Objects/{machine}/SpindleSpeed                          Double, read-only, rpm
    Objects/{machine}/Temperature                           Double, read-only, deg C
    Objects/{machine}/spindle_speed                         Double, writable set-point (rpm),
                                                            clamped by the controller to --max
    Objects/{machine}/coolant_flow                          Double set-point the controller
                                                            keeps read-only (a write is refused)
    Objects/{machine}/JobManagement/JobOrderControl/Start   method, OPC 40001-3 style:
                                                            Start(JobOrderID String) ->
                                                            ReturnStatus UInt64 (0 started, 1
                                                            unknown job order, 3 runs already)

The machine cycles NotExecuting -> Executing every --cycle seconds; signals change every 0.2 s.
Prints `listening opc.tcp://...` once the server is up, and at exit (SIGTERM or --seconds) one
JSON line with the writes it took.
"""

import argparse
import asyncio
import json
import math
import signal
import sys

from asyncua import Server, ua
from asyncua.common.callback import CallbackType


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--machine", default="MILL-02")
    parser.add_argument("--cycle", type=float, default=1.0, help="seconds between state changes")
    parser.add_argument("--max", type=float, default=7000.0, help="the controller's spindle_speed limit")
    parser.add_argument("--seconds", type=float, default=120.0, help="serve this long, then exit")
    parser.add_argument("--jobs", default="", help="job orders stored on the machine (comma-separated)")
    args = parser.parse_args()

    server = Server()
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{args.port}/"
    server.set_endpoint(endpoint)
    server.set_server_name("independent test machine")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:example:machine-builder")

    machine = await server.nodes.objects.add_object(idx, args.machine)
    item_state = await machine.add_object(idx, "MachineryItemState")
    state = await item_state.add_variable(idx, "CurrentState", ua.LocalizedText("NotExecuting", "en"))
    op_mode = await machine.add_object(idx, "MachineryOperationMode")
    await op_mode.add_variable(idx, "CurrentState", ua.LocalizedText("Processing", "en"))
    spindle = await machine.add_variable(idx, "SpindleSpeed", 0.0)
    temperature = await machine.add_variable(idx, "Temperature", 20.0)
    set_point = await machine.add_variable(idx, "spindle_speed", 5000.0)
    await set_point.set_writable(True)
    coolant = await machine.add_variable(idx, "coolant_flow", 12.0)  # never writable

    writes = []
    clamp = {"value": None}

    # Job control: the machine starts a job order its MES stored on it, once.
    stored = [j for j in args.jobs.split(",") if j]
    jobs_started = []

    def start(_parent, job_order_id, *_comment):
        job = job_order_id.Value
        if job not in stored:
            return [ua.Variant(1, ua.VariantType.UInt64)]  # unknown job order
        if job in jobs_started:
            return [ua.Variant(3, ua.VariantType.UInt64)]  # invalid state: it runs already
        jobs_started.append(job)
        return [ua.Variant(0, ua.VariantType.UInt64)]

    job_management = await machine.add_object(idx, "JobManagement")
    job_control = await job_management.add_object(idx, "JobOrderControl")
    await job_control.add_method(idx, "Start", start, [ua.VariantType.String], [ua.VariantType.UInt64])

    def on_write(event, _dispatcher):
        # A controller clamps what it is told to its own limits.
        for node_id, value in zip(event.request_params.NodesToWrite, event.response_params):
            if node_id.NodeId == set_point.nodeid:
                written = node_id.Value.Value.Value
                writes.append({"node": args.machine + ".spindle_speed", "value": written, "status": str(value)})
                if isinstance(written, float) and written > args.max:
                    clamp["value"] = args.max

    server.subscribe_server_callback(CallbackType.PostWrite, on_write)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with server:
        print(f"listening {endpoint}", flush=True)
        started = loop.time()
        executing = False
        next_change = started + args.cycle
        tick = 0
        while not stop.is_set() and loop.time() - started < args.seconds:
            now = loop.time()
            if now >= next_change:
                executing = not executing
                word = "Executing" if executing else "NotExecuting"
                await state.write_value(ua.LocalizedText(word, "en"))
                next_change = now + args.cycle
            if clamp["value"] is not None:
                await set_point.write_value(clamp["value"])
                clamp["value"] = None
            tick += 1
            speed = (await set_point.read_value()) if executing else 0.0
            await spindle.write_value(speed + 5.0 * math.sin(tick / 3.0))
            await temperature.write_value(35.0 + 2.0 * math.sin(tick / 10.0))
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except asyncio.TimeoutError:
                pass
    print(json.dumps({"writes": writes, "started": jobs_started, "coolant_flow": await coolant.read_value()}), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
