// A model's tokenizer as Hugging Face defines it: tokenizer.json run by @huggingface/tokenizers,
// special tokens and padding side from tokenizer_config.json, and the chat template (from
// tokenizer_config.json or chat_template.jinja) rendered by @huggingface/jinja.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodedChat {
  ids: number[];
  /** True for tokens the assistant wrote (its content and end-of-turn marker): the training targets. */
  assistantMask: boolean[];
}

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Json;
  } catch (e) {
    throw new Error(`tsloth: ${path} is not valid JSON (${(e as Error).message}); the model files are damaged, download them again`);
  }
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
  return undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

function chatTemplateOf(dir: string, config: Json): string | undefined {
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as { name?: string; template?: string }[];
    return (named.find((x) => x.name === "default") ?? named[0])?.template;
  }
  const file = join(dir, "chat_template.jinja");
  return existsSync(file) ? readFileSync(file, "utf8") : undefined;
}

export class Tokenizer {
  readonly bosTokenId?: number;
  readonly eosTokenIds: number[];
  readonly padTokenId?: number;
  readonly paddingSide: "left" | "right";
  readonly vocabSize: number;
  readonly hasChatTemplate: boolean;
  private readonly template?: Template;
  private readonly specialTokens: Record<string, string>;

  private constructor(private readonly hf: HfTokenizer, config: Json, extraEos: number[], chatTemplate: string | undefined, readonly source: string) {
    const id = (key: string): number | undefined => {
      const text = tokenText(config[key]);
      return text === undefined ? undefined : hf.token_to_id(text);
    };
    this.bosTokenId = id("bos_token");
    const eos = id("eos_token");
    this.eosTokenIds = [...new Set([...(eos === undefined ? [] : [eos]), ...extraEos])];
    this.padTokenId = id("pad_token");
    this.paddingSide = config.padding_side === "left" ? "left" : "right";
    let maxId = -1;
    for (const v of hf.get_vocab(true).values()) maxId = Math.max(maxId, v);
    this.vocabSize = maxId + 1;
    this.specialTokens = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const text = tokenText(config[key]);
      if (text !== undefined) this.specialTokens[key] = text;
    }
    this.hasChatTemplate = chatTemplate !== undefined;
    if (chatTemplate !== undefined) {
      try {
        this.template = new Template(chatTemplate);
      } catch (e) {
        throw new Error(`tsloth: ${source}: the chat template does not parse (${(e as Error).message})`);
      }
    }
  }

  /** Reads tokenizer.json, tokenizer_config.json and (for extra end-of-sequence ids) generation_config.json. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tokPath = join(dir, "tokenizer.json");
    if (!existsSync(tokPath))
      throw new Error(`tsloth: ${dir} has no tokenizer.json; tsloth needs a fast (tokenizer.json) tokenizer. Save one with transformers' AutoTokenizer.save_pretrained.`);
    const tokJson = readJson(tokPath);
    const cfgPath = join(dir, "tokenizer_config.json");
    const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokJson, config);
    } catch (e) {
      throw new Error(`tsloth: ${tokPath}: this tokenizer is not supported (${(e as Error).message})`);
    }
    const extraEos: number[] = [];
    for (const f of ["generation_config.json", "config.json"]) {
      const p = join(dir, f);
      if (existsSync(p)) extraEos.push(...idList(readJson(p).eos_token_id));
    }
    return new Tokenizer(hf, config, extraEos, chatTemplateOf(dir, config), dir);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** The chat rendered to text by the model's template, as transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template)
      throw new Error(`tsloth: ${this.source} has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja); use plain {"text": ...} data or a model with a template`);
    return this.template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      ...this.specialTokens,
    });
  }

  /**
   * Token ids of a chat and which of them the assistant wrote, for training on completions only.
   *
   * Method: the template is rendered incrementally. For assistant message i, the text up to
   * `messages[:i]` with the generation prompt marks where its content starts, and the text of
   * `messages[:i+1]` marks where its turn ends. The rendered chat is cut at those points and each
   * piece is tokenized on its own (no special tokens added: templates write BOS themselves), so
   * the mask is exact by construction. Limits: (1) the template must render each prefix of the
   * conversation as a prefix of the whole rendering (true of ChatML, Llama 3, Mistral and Qwen
   * templates; one that rewrites earlier turns, e.g. dropping past reasoning, is refused with an
   * error); (2) ids equal whole-text tokenization only when no BPE merge crosses a cut; cuts fall
   * after role headers and after end-of-turn markers, where templates put special tokens or newlines.
   */
  encodeChat(messages: ChatMessage[]): EncodedChat {
    const full = this.applyChatTemplate(messages);
    const cuts: { at: number; assistant: boolean }[] = [];
    for (let i = 0; i < messages.length; i++) {
      if (messages[i]!.role !== "assistant") continue;
      const start = this.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
      const end = this.applyChatTemplate(messages.slice(0, i + 1));
      if (!full.startsWith(start) || !full.startsWith(end) || end.length < start.length)
        throw new Error(`tsloth: ${this.source}: the chat template does not render conversations incrementally, so assistant tokens cannot be located; train on whole texts instead (no completion-only masking)`);
      cuts.push({ at: start.length, assistant: false }, { at: end.length, assistant: true });
    }
    const ids: number[] = [];
    const assistantMask: boolean[] = [];
    let pos = 0;
    const take = (to: number, assistant: boolean) => {
      if (to <= pos) return;
      const piece = this.encode(full.slice(pos, to), { addSpecialTokens: false });
      for (const id of piece) {
        ids.push(id);
        assistantMask.push(assistant);
      }
      pos = to;
    };
    for (const c of cuts) take(c.at, c.assistant);
    take(full.length, false);
    return { ids, assistantMask };
  }
}
