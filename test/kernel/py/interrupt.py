"""Interrupt (in the kernelspec's interrupt_mode: signal or message), shutdown and restart."""
import os
import queue
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import collect, done, expect, ok, result_of, run, shell_reply, start, stop  # noqa: E402

name = sys.argv[1]
km, kc = start(name=name)


def kill_on_failure(kind, value, tb):
    # A kernel left running would hold this script's pipes open.
    try:
        km.shutdown_kernel(now=True)
    finally:
        sys.__excepthook__(kind, value, tb)


sys.excepthook = kill_on_failure
mode = km.kernel_spec.interrupt_mode
expect(mode == sys.argv[2], (mode, sys.argv[2]))

run(kc, "const kept = { value: 'still here' }\nlet counter = 0")


def interrupted(code, wait=0.4):
    msg_id = kc.execute(code)
    # Interrupt only once the cell runs (execute_input is published as it starts).
    while True:
        m = kc.get_iopub_msg(timeout=30)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    time.sleep(wait)
    t0 = time.time()
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id, timeout=10)["content"]
    msgs = collect(kc, msg_id, timeout=10)
    return reply, msgs, time.time() - t0



# a synchronous infinite loop
reply, msgs, took = interrupted("while (true) { counter++ }")
expect(reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply)
expect(msgs[-1]["content"]["execution_state"] == "idle", msgs[-1])
reply, msgs = run(kc, "kept.value + ' ' + (counter > 0)")
expect(result_of(msgs)["text/plain"] == "'still here true'", msgs)
ok(f"{mode}: while (true) interrupted in {took:.2f}s, state kept")

# a long await; the cell's abortSignal fires too
reply, msgs, took = interrupted("let sawAbort = false\nabortSignal.addEventListener('abort', () => { sawAbort = true })\nawait new Promise((r) => setTimeout(r, 60000))")
expect(reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply)
reply, msgs = run(kc, "[kept.value, sawAbort, abortSignal.aborted]")
expect(result_of(msgs)["text/plain"] == "[ 'still here', true, false ]", msgs)
ok(f"{mode}: long await interrupted in {took:.2f}s, abort signal fired, state kept")

# a synchronous loop after the cell's first await runs outside the cell's script
if mode == "message":
    reply, msgs, took = interrupted("await new Promise((r) => setTimeout(r, 10))\nwhile (true) { counter++ }")
    expect(reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply)
    reply, msgs = run(kc, "kept.value")
    expect(result_of(msgs)["text/plain"] == "'still here'", msgs)
    ok(f"{mode}: a loop after the first await interrupted in {took:.2f}s")

# heartbeat and control answer while the main thread is blocked
msg_id = kc.execute("const until = Date.now() + 3000; while (Date.now() < until) {}")
time.sleep(0.3)
kc.control_channel.send(kc.session.msg("kernel_info_request", {}))
ctl = kc.get_control_msg(timeout=2.5)  # the cell still blocks the main thread for seconds
expect(ctl["msg_type"] == "kernel_info_reply", ctl["msg_type"])
expect(kc.hb_channel.is_beating(), "heartbeat")
try:
    early = kc.get_shell_msg(timeout=0.05)
except queue.Empty:
    early = None
expect(early is None, "the blocking cell finished before control answered")
shell_reply(kc, msg_id)
ok(f"{mode}: control and heartbeat answer while a cell blocks the main thread")

# restart: a fresh kernel without the old state
km.restart_kernel(now=False)
kc.wait_for_ready(timeout=30)
reply, msgs = run(kc, "typeof kept")
expect(result_of(msgs)["text/plain"] == "'undefined'", msgs)
ok(f"{mode}: restart gives a fresh kernel")

# shutdown: the process exits by itself
proc = km.provisioner.process if hasattr(km, "provisioner") and km.provisioner else km.kernel
kc.shutdown()
t0 = time.time()
while proc.poll() is None and time.time() - t0 < 5:
    time.sleep(0.05)
expect(proc.poll() is not None, "kernel still running 5 s after shutdown_request")
ok(f"{mode}: shutdown_request ends the process in {time.time() - t0:.2f}s")
kc.stop_channels()
km.cleanup_resources() if hasattr(km, "cleanup_resources") else None
done()
