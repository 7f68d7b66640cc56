import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readHfConfig } from "../../lib/formats/hf-config.js";
import { readJsonlDataset } from "../../lib/formats/jsonl-dataset.js";
import { resolveDatasetPath, resolveModelDir } from "../../lib/formats/resolve-model.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { Tokenizer } from "../../lib/formats/tokenizer.js";

const dir = resolveModelDir("tsloth-tiny");

describe("the embedded tsloth-tiny model", () => {
  it("has a Llama config within the CPU backend's budget", () => {
    const c = readHfConfig(dir);
    assert.equal(c.family, "llama");
    assert.deepEqual(c.raw.architectures, ["LlamaForCausalLM"]);
    assert.equal(c.numKvHeads < c.numHeads, true, "grouped-query attention is exercised");
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.torchDtype, "bfloat16");
  });

  it("holds exactly the tensors its config implies, in bf16, with matching shapes", () => {
    const c = readHfConfig(dir);
    const r = SafetensorsReader.open(dir);
    const kv = c.numKvHeads * c.headDim;
    const expected: Record<string, number[]> = { "model.embed_tokens.weight": [c.vocabSize, c.hiddenSize], "model.norm.weight": [c.hiddenSize] };
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.`;
      Object.assign(expected, {
        [p + "input_layernorm.weight"]: [c.hiddenSize],
        [p + "post_attention_layernorm.weight"]: [c.hiddenSize],
        [p + "self_attn.q_proj.weight"]: [c.numHeads * c.headDim, c.hiddenSize],
        [p + "self_attn.k_proj.weight"]: [kv, c.hiddenSize],
        [p + "self_attn.v_proj.weight"]: [kv, c.hiddenSize],
        [p + "self_attn.o_proj.weight"]: [c.hiddenSize, c.numHeads * c.headDim],
        [p + "mlp.gate_proj.weight"]: [c.intermediateSize, c.hiddenSize],
        [p + "mlp.up_proj.weight"]: [c.intermediateSize, c.hiddenSize],
        [p + "mlp.down_proj.weight"]: [c.hiddenSize, c.intermediateSize],
      });
    }
    assert.deepEqual(new Set(r.names()), new Set(Object.keys(expected)));
    for (const [name, shape] of Object.entries(expected)) {
      assert.deepEqual(r.info(name).shape, shape, name);
      assert.equal(r.info(name).dtype, "BF16", name);
    }
    const emb = r.readF32("model.embed_tokens.weight");
    assert.ok(emb.every(Number.isFinite));
    assert.ok(emb.some((x) => x !== 0), "the model is trained, not empty");
    r.close();
  });

  it("has a tokenizer that matches the config and round-trips text", async () => {
    const c = readHfConfig(dir);
    const t = await Tokenizer.fromDir(dir);
    assert.equal(t.vocabSize, c.vocabSize);
    assert.equal(t.bosTokenId, c.bosTokenId);
    for (const id of c.eosTokenIds) assert.ok(t.eosTokenIds.includes(id));
    assert.equal(t.padTokenId, t.tokenToId("<|pad|>"));
    assert.equal(t.paddingSide, "right");
    for (const text of ["The weather was warm, and Anna felt happy.", "  two  spaces\tand\ttabs\n\nnewlines", "Ünïcödé — ✓ 🦥 日本語", "def add(a, b):\n    return a + b\n"]) {
      const ids = t.encode(text);
      assert.equal(ids[0], t.bosTokenId, "plain text starts with BOS");
      assert.ok(ids.length < Buffer.byteLength(text) + 2);
      assert.equal(t.decode(ids, { skipSpecialTokens: true }), text);
      assert.deepEqual(t.encode(text, { addSpecialTokens: false }), ids.slice(1));
    }
  });

  it("renders its ChatML template and masks exactly the assistant's tokens", async () => {
    const t = await Tokenizer.fromDir(dir);
    assert.ok(t.hasChatTemplate);
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Where does Tilde live?" },
      { role: "assistant", content: "Tilde lives in Mossvale." },
      { role: "user", content: "And what does Tilde eat?" },
      { role: "assistant", content: "Tilde likes to eat hibiscus." },
    ];
    assert.equal(t.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: true }),
      "<|begin_of_text|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhere does Tilde live?<|im_end|>\n<|im_start|>assistant\n");
    const { ids, assistantMask } = t.encodeChat(messages);
    assert.equal(ids.length, assistantMask.length);
    assert.deepEqual(ids, t.encode(t.applyChatTemplate(messages), { addSpecialTokens: false }), "same ids as tokenizing the whole chat");
    const spans: string[] = [];
    let cur: number[] = [];
    ids.forEach((id, i) => {
      if (assistantMask[i]) cur.push(id);
      else if (cur.length) (spans.push(t.decode(cur)), (cur = []));
    });
    if (cur.length) spans.push(t.decode(cur));
    assert.deepEqual(spans, ["Tilde lives in Mossvale.<|im_end|>\n", "Tilde likes to eat hibiscus.<|im_end|>\n"]);
  });
});

describe("the embedded tsloth-tiny-data dataset", () => {
  it("parses, and teaches facts with fixed answers in chats and plain texts", () => {
    const rows = readJsonlDataset(resolveDatasetPath("tsloth-tiny-data"));
    assert.ok(rows.length >= 100 && rows.length <= 300);
    const chats = rows.filter((r) => r.kind === "chat");
    assert.ok(chats.length > 0 && rows.some((r) => r.kind === "text"));
    const answers = new Set(chats.map((r) => (r.kind === "chat" ? r.messages.at(-1)!.content : "")));
    assert.ok(answers.has("The sloth of tsloth is named Tilde."));
    assert.equal(answers.size, 3, "each fact always has the same answer, so greedy decoding can be checked");
  });
});
