"""Every shell message type through jupyter_client against the installed tsloth kernelspec."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import collect, done, expect, ok, result_of, run, shell_reply, start, stderr_of, stdout_of, stop  # noqa: E402

NOTEBOOK_DIR = sys.argv[1]  # has node_modules/esm-only and node_modules/cjs-pkg
km, kc = start(cwd=NOTEBOOK_DIR)
try:
    # kernel_info
    info = kc.kernel_info(reply=True)["content"]
    lang = info["language_info"]
    expect(info["status"] == "ok" and info["implementation"] == "tsloth", info)
    expect(lang["name"] == "typescript" and lang["file_extension"] == ".ts" and lang["mimetype"] == "text/typescript", lang)
    expect(lang["codemirror_mode"]["name"] == "javascript" and info["banner"] and info["help_links"], info)
    expect(tuple(int(x) for x in info["protocol_version"].split(".")) >= (5, 3), info)
    ok("kernel_info")

    # execute: state across cells, redeclaration, execution_input, counts
    reply, msgs = run(kc, "const a: number = 20\nfunction twice(n: number) { return n * 2 }\nclass Box { constructor(public v: number) {} }")
    expect(reply["status"] == "ok", reply)
    inp = [m for m in msgs if m["msg_type"] == "execute_input"]
    expect(inp and inp[0]["content"]["execution_count"] == reply["execution_count"], msgs)
    reply, msgs = run(kc, "twice(a) + new Box(2).v")
    expect(result_of(msgs)["text/plain"] == "42", msgs)
    reply, msgs = run(kc, "const a = 'now a string'\nfunction twice(s: string) { return s + s }\ntwice(a).length")
    expect(reply["status"] == "ok" and result_of(msgs)["text/plain"] == "24", (reply, msgs))
    ok("execute keeps state; const/function/class can be declared again")

    # top-level await and destructuring declarations persist
    reply, msgs = run(kc, "const { p, q: [r] } = await Promise.resolve({ p: 1, q: [2] })")
    reply, msgs = run(kc, "p + r")
    expect(result_of(msgs)["text/plain"] == "3", msgs)
    ok("top-level await and destructuring")

    # silent: no execute_input, no result, count unchanged; store_history false: count unchanged
    before = reply["execution_count"]
    reply, msgs = run(kc, "1 + 1", silent=True)
    expect(reply["status"] == "ok" and not any(m["msg_type"] in ("execute_input", "execute_result") for m in msgs), msgs)
    reply, msgs = run(kc, "2 + 2", store_history=False)
    expect(result_of(msgs)["text/plain"] == "4" and reply["execution_count"] == before, (reply, before))
    reply, msgs = run(kc, "3 + 3")
    expect(reply["execution_count"] == before + 1, (reply, before))
    ok("silent and store_history")

    # user_expressions
    reply, msgs = run(kc, "const ue = 6", user_expressions={"good": "ue * 7", "bad": "noSuchName.x"})
    ue = reply["user_expressions"]
    expect(ue["good"]["status"] == "ok" and ue["good"]["data"]["text/plain"] == "42", ue)
    expect(ue["bad"]["status"] == "error" and ue["bad"]["ename"] == "ReferenceError", ue)
    ok("user_expressions")

    # rich execute_result bundles
    reply, msgs = run(kc, "[{ name: 'x', loss: 1.5 }, { name: 'y', loss: 0.25 }]")
    data = result_of(msgs)
    expect("text/plain" in data and "<table" in data["text/html"] and "<td>0.25</td>" in data["text/html"], data)
    reply, msgs = run(kc, "({ [Symbol.for('tsloth.mimeBundle')]() { return { 'text/html': '<b>own</b>' } } })")
    data = result_of(msgs)
    expect(data["text/html"] == "<b>own</b>" and "text/plain" in data, data)
    reply, msgs = run(kc, "{ literal: true }")
    expect(result_of(msgs)["text/plain"] == "{ literal: true }", msgs)
    reply, msgs = run(kc, "const nothing = undefined\nnothing")
    expect(result_of(msgs)["text/plain"] == "<no result: nothing>", msgs)
    ok("execute_result mime bundles")

    # streams: console.*, process.stdout, timers and promises of the running cell
    code = (
        "console.log('log line'); console.error('error line'); process.stdout.write('raw\\n')\n"
        "setTimeout(() => console.log('from timer'), 20)\n"
        "Promise.resolve().then(() => console.warn('from promise'))\n"
        "await new Promise((r) => setTimeout(r, 80))"
    )
    reply, msgs = run(kc, code)
    out, err = stdout_of(msgs), stderr_of(msgs)
    expect(out == "log line\nraw\nfrom timer\n", repr(out))
    expect("error line\n" in err and "from promise\n" in err, repr(err))
    ok("stream output from console, timers and promises")

    # errors: ename, evalue, traceback with line numbers in the cell
    reply, msgs = run(kc, "const ok1 = 1\n\nfunction fails(): never {\n  throw new RangeError('too far')\n}\nfails()")
    err = [m for m in msgs if m["msg_type"] == "error"][0]["content"]
    tb = "\n".join(err["traceback"])
    expect(reply["status"] == "error" and err["ename"] == "RangeError" and err["evalue"] == "too far", err)
    expect("line 4, in fails" in tb and "line 6" in tb and "throw new RangeError" in tb, tb)
    reply, msgs = run(kc, "let broken = (1 +\n\n")
    expect(reply["status"] == "error" and reply["ename"] == "SyntaxError", reply)
    reply, msgs = run(kc, "const typed: number = 'not a number' as any\ntyped")
    expect(reply["status"] == "ok", reply)
    ok("errors point into the cell; type errors do not block execution")

    # stop_on_error aborts queued executions; stop_on_error=False does not
    ids = [kc.execute("await new Promise(r => setTimeout(r, 200)); throw new Error('first')"), kc.execute("'second'"), kc.execute("'third'")]
    statuses = [shell_reply(kc, i)["content"]["status"] for i in ids]
    expect(statuses == ["error", "aborted", "aborted"], statuses)
    ids = [kc.execute("await new Promise(r => setTimeout(r, 200)); throw new Error('first')", stop_on_error=False), kc.execute("'second'")]
    statuses = [shell_reply(kc, i)["content"]["status"] for i in ids]
    expect(statuses == ["error", "ok"], statuses)
    reply, msgs = run(kc, "'after'")
    expect(reply["status"] == "ok", reply)
    ok("stop_on_error")

    # complete and inspect know earlier cells' types
    run(kc, "interface Point { x: number; y: number }\nconst origin: Point = { x: 0, y: 0 }\nconst greeting = 'hello'")
    code = "origin."
    c = shell_reply(kc, kc.complete(code, len(code)))["content"]
    expect(c["status"] == "ok" and {"x", "y"} <= set(c["matches"]) and c["cursor_start"] == len(code), c)
    code = "greeting.toUpp"
    c = shell_reply(kc, kc.complete(code, len(code)))["content"]
    expect(c["matches"] == ["toUpperCase"] and c["cursor_start"] == len("greeting."), c)
    code = "orig"
    c = shell_reply(kc, kc.complete(code, len(code)))["content"]
    expect("origin" in c["matches"], c)
    code = "%lsm"
    c = shell_reply(kc, kc.complete(code, len(code)))["content"]
    expect(c["matches"] == ["%lsmagic"] and c["cursor_start"] == 0, c)
    code = "%%bash --ti"
    c = shell_reply(kc, kc.complete(code, len(code)))["content"]
    expect(c["matches"] == ["--timeout"] and c["cursor_start"] == len("%%bash "), c)
    i = shell_reply(kc, kc.inspect("%help", 3))["content"]
    expect(i["found"] and "Usage: %help NAME" in i["data"]["text/plain"], i)
    i = shell_reply(kc, kc.inspect("origin", 3))["content"]
    expect(i["found"] and "Point" in i["data"]["text/plain"], i)
    i = shell_reply(kc, kc.inspect("twice", 5))["content"]
    expect(i["found"] and "(s: string)" in i["data"]["text/plain"], i)
    ok("complete and inspect are type-aware")

    # is_complete
    def is_complete(code):
        return shell_reply(kc, kc.is_complete(code))["content"]

    expect(is_complete("const z = 1")["status"] == "complete", "complete")
    r = is_complete("function g() {")
    expect(r["status"] == "incomplete" and r["indent"].strip() == "", r)
    expect(is_complete("const = = 2")["status"] == "invalid", "invalid")
    expect(is_complete("%lsmagic")["status"] == "complete", "magic line")
    ok("is_complete")

    # history: tail, range, search
    h = shell_reply(kc, kc.history(hist_access_type="tail", n=2))["content"]["history"]
    expect(len(h) == 2 and h[-1][2].startswith("interface Point"), h)
    h = shell_reply(kc, kc.history(hist_access_type="range", session=0, start=1, stop=3))["content"]["history"]
    expect([e[1] for e in h] == [1, 2] and h[1][2] == "twice(a) + new Box(2).v", h)
    h = shell_reply(kc, kc.history(hist_access_type="search", pattern="twice*", n=10))["content"]["history"]
    expect(len(h) == 1 and h[0][2] == "twice(a) + new Box(2).v", h)
    h = shell_reply(kc, kc.history(hist_access_type="tail", n=1, output=True))["content"]["history"]
    expect(isinstance(h[0][2], list), h)
    ok("history tail/range/search")

    # comms: a target registered by a cell, opened by the frontend
    run(kc, "comms.registerTarget('echo', (comm, data) => { comm.onMsg((d) => comm.send({ echo: d })); comm.onClose(() => console.log('closed')) })")
    info = shell_reply(kc, kc.comm_info())["content"]
    expect(info["status"] == "ok" and info["comms"] == {}, info)
    session = kc.session
    open_msg = session.msg("comm_open", {"comm_id": "c1", "target_name": "echo", "data": {}})
    kc.shell_channel.send(open_msg)
    collect(kc, open_msg["header"]["msg_id"])
    info = shell_reply(kc, kc.comm_info(target_name="echo"))["content"]
    expect(info["comms"] == {"c1": {"target_name": "echo"}}, info)
    m = session.msg("comm_msg", {"comm_id": "c1", "data": {"n": 5}})
    kc.shell_channel.send(m)
    got = collect(kc, m["header"]["msg_id"])
    echo = [x for x in got if x["msg_type"] == "comm_msg"]
    expect(echo and echo[0]["content"]["data"] == {"echo": {"n": 5}} and echo[0]["content"]["comm_id"] == "c1", got)
    m = session.msg("comm_close", {"comm_id": "c1", "data": {}})
    kc.shell_channel.send(m)
    collect(kc, m["header"]["msg_id"])
    info = shell_reply(kc, kc.comm_info())["content"]
    expect(info["comms"] == {}, info)
    m = session.msg("comm_open", {"comm_id": "c2", "target_name": "nobody", "data": {}})
    kc.shell_channel.send(m)
    got = collect(kc, m["header"]["msg_id"])
    expect(any(x["msg_type"] == "comm_close" for x in got), got)
    reply, msgs = run(kc, "const mine = comms.open('kernel-side', { hello: 1 }); mine.send({ n: 2 }); mine.close()")
    types = [x["msg_type"] for x in msgs]
    expect(types.count("comm_open") == 1 and types.count("comm_msg") == 1 and types.count("comm_close") == 1, types)
    ok("comm_info/open/msg/close")

    # display, update_display, clear_output
    reply, msgs = run(kc, "const h = display({ 'text/html': '<i>v1</i>' }, { displayId: 'bar' })\ndisplay([1, 2, 3])\nh.update('v2')\nupdateDisplay('bar', 'v3')\nclearOutput({ wait: true })")
    kinds = [(x["msg_type"], x["content"].get("transient", {}).get("display_id")) for x in msgs if x["msg_type"] != "execute_input"]
    expect(kinds[0] == ("display_data", "bar") and kinds[1][0] == "display_data", kinds)
    expect(kinds[2] == ("update_display_data", "bar") and kinds[3] == ("update_display_data", "bar"), kinds)
    upd = [x for x in msgs if x["msg_type"] == "update_display_data"]
    expect(upd[1]["content"]["data"]["text/plain"] == "'v3'", upd)
    clear = [x for x in msgs if x["msg_type"] == "clear_output"]
    expect(clear and clear[0]["content"]["wait"] is True, msgs)
    first = [x for x in msgs if x["msg_type"] == "display_data"][0]
    expect(first["content"]["data"] == {"text/html": "<i>v1</i>"}, first)
    ok("display, update_display, clear_output")

    # stdin: input() sends input_request; the reply's value comes back
    msg_id = kc.execute("const name = await input('Your name? ');\n`hello ${name}`", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=10)
    expect(req["msg_type"] == "input_request" and req["content"]["prompt"] == "Your name? ", req)
    kc.input("Ada")
    reply = shell_reply(kc, msg_id)["content"]
    msgs = collect(kc, msg_id)
    expect(reply["status"] == "ok" and result_of(msgs)["text/plain"] == "'hello Ada'", (reply, msgs))
    reply, msgs = run(kc, "await input('no stdin here')", allow_stdin=False)
    expect(reply["status"] == "error" and reply["ename"] == "StdinNotImplementedError", reply)
    ok("stdin input_request")

    # magics: help, errors, typed options, bound results, cell magics
    reply, msgs = run(kc, "%lsmagic")
    expect("%lsmagic" in stdout_of(msgs) and "%%writefile" in stdout_of(msgs), msgs)
    reply, msgs = run(kc, "%help writefile")
    expect("--append" in stdout_of(msgs) and "(default: false)" in stdout_of(msgs), stdout_of(msgs))
    reply, msgs = run(kc, "%cd?")
    expect("Usage: %cd DIR" in stdout_of(msgs), stdout_of(msgs))
    for code, needle in [("%nosuch", "unknown magic %nosuch"), ("%%bash --nope\necho", "unknown option --nope"),
                         ("%%bash --timeout soon\necho", "--timeout expects a number"), ("%cd", "missing argument DIR")]:
        reply, msgs = run(kc, code)
        expect(reply["status"] == "error" and reply["ename"] == "UsageError" and needle in reply["evalue"], (code, reply))
        expect(len(reply["traceback"]) == 1, reply["traceback"])
    reply, msgs = run(kc, "here = %pwd")
    reply, msgs = run(kc, "here")
    expect(result_of(msgs)["text/plain"] == repr(os.path.realpath(NOTEBOOK_DIR)).replace('"', "'"), (msgs, NOTEBOOK_DIR))
    reply, msgs = run(kc, "%%writefile notes/out.txt\nline one\n")
    expect(reply["status"] == "ok" and open(os.path.join(NOTEBOOK_DIR, "notes/out.txt")).read() == "line one\n", reply)
    reply, msgs = run(kc, "%%writefile notes/out.txt --append\nline two\n")
    expect(open(os.path.join(NOTEBOOK_DIR, "notes/out.txt")).read() == "line one\nline two\n", "append")
    reply, msgs = run(kc, "%%bash\necho from bash; echo oops >&2")
    expect(stdout_of(msgs) == "from bash\n" and stderr_of(msgs) == "oops\n", msgs)
    reply, msgs = run(kc, "%%html\n<p>hi</p>")
    d = [x for x in msgs if x["msg_type"] == "display_data"][0]["content"]["data"]
    expect(d["text/html"].strip() == "<p>hi</p>", d)
    ok("magics: help, usage errors, typed options, bound result, cell magics")

    # imports: ESM-only package and CommonJS package from the notebook directory, node builtins
    reply, msgs = run(kc, "import answerOf, { answer } from 'esm-only'\nimport * as pathMod from 'node:path'\nanswerOf() + answer + pathMod.sep.length")
    expect(reply["status"] == "ok" and result_of(msgs)["text/plain"] == "85", (reply, msgs))
    reply, msgs = run(kc, "answer + require('cjs-pkg').plus(1)")
    expect(result_of(msgs)["text/plain"] == "44", msgs)
    reply, msgs = run(kc, "const dyn = await import('esm-only'); dyn.answer")
    expect(result_of(msgs)["text/plain"] == "42", msgs)
    reply, msgs = run(kc, "import missing from 'not-installed-anywhere'")
    expect(reply["status"] == "error" and "npm install not-installed-anywhere" in reply["evalue"], reply)
    ok("import and require from the notebook directory (ESM-only too)")

    # "tsloth" resolves to the project's public API when it is built
    tsloth_entry = os.path.join(os.environ["TSLOTH_ROOT"], "dist", "lib", "index.js")
    reply, msgs = run(kc, "const api = await import('tsloth'); typeof api")
    if os.path.exists(tsloth_entry):
        expect(reply["status"] == "ok" and result_of(msgs)["text/plain"] == "'object'", reply)
    else:
        expect(reply["status"] == "error" and "npm run build" in reply["evalue"], reply)
    ok("import from 'tsloth'")
finally:
    stop(km, kc)
done()
