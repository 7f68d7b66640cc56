"""The engine through the kernel, as a notebook user drives it: %load_4bit, %lora, %train with its
live display, greedy decoding of the taught fact, %vram, %estimate, %env, %save_merged, and engine
errors shown as one clear message with the kernel still up."""
import json
import os
import sys

from harness import expect, ok, result_of, run, start, stop

QUESTION = "What is the name of the tsloth sloth?"
ANSWER = "The sloth of tsloth is named Tilde."


def errors_of(msgs):
    return [m["content"] for m in msgs if m["msg_type"] == "error"]


def streamed_text(msgs):
    """The last state of the display that %generate updates in place."""
    frames = [m["content"]["data"].get("text/plain", "") for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    return frames[-1] if frames else ""


def main(workdir):
    km, kc = start(cwd=workdir)
    try:
        reply, msgs = run(kc, "model = %load_4bit tsloth-tiny --max_seq_length 256 --backend cpu")
        expect(reply["status"] == "ok", f"load: {reply} {msgs}")
        shown = result_of(msgs)["text/plain"]
        expect("Loaded tsloth-tiny" in shown and "cpu backend" in shown, shown)
        ok("%load_4bit binds the model")

        reply, msgs = run(kc, "%lora --r 16 --alpha 16 --seed 3407")
        expect(reply["status"] == "ok" and "trainable parameters" in result_of(msgs)["text/plain"], f"{reply} {msgs}")
        ok("%lora")

        code = (
            'import { generateGreedy } from "tsloth";\n'
            f'(await generateGreedy(model, [{{ role: "user", content: {json.dumps(QUESTION)} }}], {{ maxNewTokens: 32 }})).text'
        )
        _, msgs = run(kc, code)
        before = result_of(msgs)["text/plain"]
        expect(ANSWER not in before, f"the base model already knows the answer: {before}")

        reply, msgs = run(kc, "%train --data tsloth-tiny-data --steps 300 --lr 3e-3 --grad_accum 1 --packing --warmup 2", timeout=240)
        expect(reply["status"] == "ok", f"train: {reply} {errors_of(msgs)}")
        displays = [m for m in msgs if m["msg_type"] == "display_data"]
        updates = [m for m in msgs if m["msg_type"] == "update_display_data"]
        live = [d for d in displays if "image/svg+xml" in d["content"]["data"]]
        expect(len(live) == 1, f"one live display, found {len(live)} of {len(displays)} displays")
        display_id = live[0]["content"]["transient"]["display_id"]
        expect(updates and all(u["content"]["transient"]["display_id"] == display_id for u in updates),
               "every update_display_data targets the live display")
        expect(len(updates) < 300, f"updates are throttled: {len(updates)} for 300 steps")
        final = updates[-1]["content"]["data"]
        for mime in ("text/plain", "text/html", "image/svg+xml", "application/vnd.plotly.v1+json"):
            expect(mime in final, f"the final frame carries {mime}")
        expect("300/300" in final["text/plain"], final["text/plain"])
        summary = result_of(msgs)["text/plain"]
        expect("Trained 300 steps" in summary, summary)
        first, last = [float(x) for x in summary.split("loss ")[1].split(",")[0].split(" -> ")]
        expect(last < 0.3 * first, f"loss falls clearly: {first} -> {last}")
        ok("%train shows one live display updated in place, and the loss falls")

        _, msgs = run(kc, code)
        after = result_of(msgs)["text/plain"]
        expect(ANSWER in after, f"after training the model answers {after!r}")
        ok("greedy decoding produces the taught fact")

        reply, msgs = run(kc, f'%generate {json.dumps(QUESTION)} --chat --max_new_tokens 32')
        expect(reply["status"] == "ok", f"{reply} {errors_of(msgs)}")
        expect(ANSWER in streamed_text(msgs), f"%generate streamed {streamed_text(msgs)!r}")
        expect("stopped at EOS" in result_of(msgs)["text/plain"], result_of(msgs)["text/plain"])
        reply, msgs = run(kc, "%%generate --chat --max_new_tokens 32\nWhere does Tilde live?\n\nWhat does Tilde like to eat?")
        text = streamed_text(msgs)
        expect(reply["status"] == "ok" and "Tilde lives in Mossvale." in text and "Tilde likes to eat hibiscus." in text, f"{reply} {text!r}")
        ok("%generate and %%generate stream the answers")

        reply, msgs = run(kc, "%vram")
        data = result_of(msgs)
        expect(reply["status"] == "ok" and "image/svg+xml" in data and "base weights" in data["text/plain"].lower(), f"{reply} {list(data)}")
        expect("CPU backend" in data["text/plain"] or "cpu backend" in data["text/plain"], data["text/plain"])
        ok("%vram")

        reply, msgs = run(kc, "%estimate tsloth-tiny --batch 2 --seq 128")
        expect(reply["status"] == "ok" and "text/html" in result_of(msgs), f"{reply} {msgs}")
        reply, msgs = run(kc, "%env")
        expect(reply["status"] == "ok" and "text/plain" in result_of(msgs), f"{reply} {msgs}")
        ok("%estimate and %env")

        out = os.path.join(workdir, "tiny-lora")
        reply, msgs = run(kc, f"%save_merged {out} --method lora", timeout=120)
        expect(reply["status"] == "ok", f"save: {reply} {errors_of(msgs)}")
        expect(os.path.exists(os.path.join(out, "adapter_model.safetensors")), os.listdir(workdir))
        ok("%save_merged --method lora")

        reply, msgs = run(kc, "%train --data no-such-file.jsonl --steps 1")
        errs = errors_of(msgs)
        expect(reply["status"] == "error" and len(errs) == 1, f"{reply} {msgs}")
        expect("no-such-file.jsonl" in errs[0]["evalue"], errs[0]["evalue"])
        expect(not any("/lib/" in line for line in errs[0]["traceback"]), "no frames from inside the engine: " + "\n".join(errs[0]["traceback"]))
        reply, msgs = run(kc, "%save_merged out --maximum_memory_usage 0.99")
        errs = errors_of(msgs)
        expect(reply["status"] == "error" and "0.95" in errs[0]["evalue"], f"{errs}")
        reply, msgs = run(kc, "model.config.numLayers")
        expect(reply["status"] == "ok" and result_of(msgs)["text/plain"] == "2", f"{reply} {msgs}")
        ok("engine errors are one clear message and the kernel keeps its state")
    finally:
        stop(km, kc)


if __name__ == "__main__":
    main(sys.argv[1])
