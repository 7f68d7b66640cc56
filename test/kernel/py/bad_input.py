"""Bad input from a raw ZeroMQ client: the kernel drops it, logs it, and keeps answering."""
import hashlib
import hmac
import json
import os
import sys
import uuid
from datetime import datetime, timezone

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from harness import done, expect, ok, result_of, run, start, stop  # noqa: E402

km, kc = start()
info = km.get_connection_info()
key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
ctx = zmq.Context.instance()


def connect(channel):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://{info['ip']}:{info[channel + '_port']}")
    return s


def frames_of(msg_type, content=None, sign=True, bad_sig=False, mangle=None):
    header = {"msg_id": uuid.uuid4().hex, "session": "raw", "username": "raw", "msg_type": msg_type,
              "version": "5.3", "date": datetime.now(timezone.utc).isoformat()}
    parts = [json.dumps(p).encode() for p in (header, {}, {}, content or {})]
    if mangle:
        parts = mangle(parts)
    sig = hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode() if sign else b""
    if bad_sig:
        sig = hmac.new(b"not the key", b"".join(parts), hashlib.sha256).hexdigest().encode()
    return header["msg_id"], [b"<IDS|MSG>", sig] + parts


def no_reply(sock, frames, what):
    sock.send_multipart(frames)
    expect(sock.poll(400) == 0, f"the kernel answered {what}")


shell = connect("shell")
control = connect("control")
_, f = frames_of("kernel_info_request", sign=False)
no_reply(shell, f, "an unsigned message")
_, f = frames_of("kernel_info_request", bad_sig=True)
no_reply(shell, f, "a wrongly signed message")
_, f = frames_of("interrupt_request", bad_sig=True)
no_reply(control, f, "a wrongly signed control message")
_, f = frames_of("kernel_info_request", mangle=lambda p: [p[0][:-3] + b"{{{", p[1], p[2], p[3]])
no_reply(shell, f, "a malformed JSON header")
_, f = frames_of("execute_request", mangle=lambda p: [p[0], p[1], p[2], b"[1, 2"])
no_reply(shell, f, "a malformed JSON content frame")
_, f = frames_of("kernel_info_request")
no_reply(shell, f[:4], "a message with missing frames")
no_reply(shell, [b"garbage", b"no delimiter"], "frames without a delimiter")
_, f = frames_of("no_such_request")
no_reply(shell, f, "an unknown msg_type")
_, f = frames_of("no_such_request")
no_reply(control, f, "an unknown msg_type on control")
ok("bad messages are dropped without a reply")

# The kernel is still up: a raw, correctly signed request gets a correctly signed reply.
msg_id, f = frames_of("kernel_info_request")
shell.send_multipart(f)
expect(shell.poll(5000) != 0, "no reply to a valid request after bad input")
reply = shell.recv_multipart()
at = reply.index(b"<IDS|MSG>")
sig, parts = reply[at + 1], reply[at + 2:at + 6]
expect(sig == hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode(), "reply signature")
header, parent = json.loads(parts[0]), json.loads(parts[1])
expect(header["msg_type"] == "kernel_info_reply" and parent["msg_id"] == msg_id, (header, parent))
for field in ("msg_id", "session", "username", "date", "msg_type", "version"):
    expect(field in header, f"header lacks {field}")
ok("a valid request after bad input gets a signed reply with a full header")

r, msgs = run(kc, "6 * 7")
expect(result_of(msgs)["text/plain"] == "42", msgs)
ok("the kernel still executes cells")
shell.close()
control.close()
stop(km, kc)
done()
