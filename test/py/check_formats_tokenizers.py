"""Reference side of tsloth's tokenizer check (driven by test/formats/reference-tokenizer.test.ts).

    check_formats_tokenizers.py make OUT
        Trains two more tokenizers on the project's corpus with the `tokenizers` package, in the
        layouts real model families ship: OUT/spm-bytefallback (Llama 2 / Mistral: "▁" metaspace
        normalizer, BPE with <0xXX> byte fallback) and OUT/regex-bytelevel (Llama 3 / Qwen: regex
        split + byte-level BPE). Each gets a tokenizer_config.json.
    check_formats_tokenizers.py encode STRINGS.json OUT.json DIR...
        Encodes every string with each DIR/tokenizer.json (with and without special tokens) and
        decodes the ids (skipping special tokens); writes {dir: [{with, without, decoded}]}.
    check_formats_tokenizers.py chat CHATS.json OUT.json DIR
        Renders each chat with transformers' apply_chat_template (text with and without the
        generation prompt, and token ids) using DIR's tokenizer files.
"""

import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from tiny_corpus import build_corpus  # noqa: E402

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def corpus() -> list[str]:
    docs, chats = build_corpus(99, documents=3000)
    return docs + [m["content"] for c in chats for m in c] + ["Ünïcödé café naïve 日本語 中文 العربية 🦥🙂"]


def write_config(d: str, bos: str, eos: str, extra: dict) -> None:
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": bos, "eos_token": eos, "clean_up_tokenization_spaces": False, **extra}, f)


def make_spm(out: str) -> None:
    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    # Llama 2's vocabulary has the 256 byte tokens right after the specials; insert them the same way.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    ordered = specials + [f"<0x{b:02X}>" for b in range(256)] + [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in specials]
    data["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    for a in data["added_tokens"]:
        a["id"] = data["model"]["vocab"][a["content"]]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    d = os.path.join(out, "spm-bytefallback")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    write_config(d, "<s>", "</s>", {"unk_token": "<unk>", "add_bos_token": True})


def make_regex(out: str) -> None:
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    d = os.path.join(out, "regex-bytelevel")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    write_config(d, "<|begin_of_text|>", "<|eot_id|>", {})


def encode(strings_path: str, out_path: str, dirs: list[str]) -> None:
    with open(strings_path, encoding="utf-8") as f:
        strings = json.load(f)
    result = {}
    for d in dirs:
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        rows = []
        for s in strings:
            with_special = tok.encode(s).ids
            rows.append({"with": with_special, "without": tok.encode(s, add_special_tokens=False).ids,
                         "decoded": tok.decode(with_special, skip_special_tokens=True)})
        result[d] = rows
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    print(f"encoded {len(strings)} strings with {len(dirs)} tokenizers")


def chat(chats_path: str, out_path: str, d: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    with open(chats_path, encoding="utf-8") as f:
        chats = json.load(f)
    rows = []
    for messages in chats:
        rows.append({
            "text": tok.apply_chat_template(messages, tokenize=False),
            "prompt": tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True),
            "ids": list(tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]),
        })
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False)
    print(f"rendered {len(rows)} chats")


if __name__ == "__main__":
    if sys.argv[1] == "chat":
        chat(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "make":
        make_spm(sys.argv[2])
        make_regex(sys.argv[2])
        print("made spm-bytefallback, regex-bytelevel")
    else:
        encode(sys.argv[2], sys.argv[3], sys.argv[4:])
