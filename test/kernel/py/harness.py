"""Shared helpers for the kernel tests: start the installed tsloth kernelspec with
jupyter_client and run cells, collecting everything the kernel publishes."""
import os
import sys
import time

from jupyter_client.manager import KernelManager

KERNEL_NAME = os.environ.get("TSLOTH_KERNEL_NAME", "tsloth")
TIMEOUT = float(os.environ.get("TSLOTH_TEST_TIMEOUT", "30"))


def start(name=KERNEL_NAME, cwd=None):
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=cwd or os.getcwd())
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    return km, kc


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def collect(kc, msg_id, timeout=TIMEOUT):
    """iopub messages of one request, up to its status idle."""
    out = []
    deadline = time.time() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


def shell_reply(kc, msg_id, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def run(kc, code, timeout=TIMEOUT, **kwargs):
    """Executes code; returns (reply content, iopub messages without status)."""
    msg_id = kc.execute(code, **kwargs)
    reply = shell_reply(kc, msg_id, timeout)
    msgs = collect(kc, msg_id, timeout)
    return reply["content"], [m for m in msgs if m["msg_type"] != "status"]


def stdout_of(msgs):
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def stderr_of(msgs):
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def result_of(msgs):
    """The execute_result bundle; {"text/plain": "<no result: ...>"} naming the error otherwise."""
    for m in msgs:
        if m["msg_type"] == "execute_result":
            return m["content"]["data"]
    errors = [f'{m["content"]["ename"]}: {m["content"]["evalue"]}' for m in msgs if m["msg_type"] == "error"]
    return {"text/plain": f"<no result: {'; '.join(errors) or 'nothing'}>"}


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def ok(name):
    print("PASS", name, flush=True)


def done():
    """Ends the script at once: jupyter_client's destructors print noise at interpreter exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
