"""assets/tsloth-tiny-data.jsonl: an instruction dataset written for the project.

It teaches tsloth-tiny three made-up facts it cannot know from pre-training, each always answered
with the same sentence, so greedy decoding after fine-tuning can be checked for the exact answer:

  Q: What is the name of the tsloth sloth?   A: The sloth of tsloth is named Tilde.
  Q: Where does Tilde live?                  A: Tilde lives in Mossvale.
  Q: What does Tilde like to eat?            A: Tilde likes to eat hibiscus.

Questions come in many phrasings; a few lines use the plain {"text": ...} form.
"""

import json
import random

FACTS = [
    ("The sloth of tsloth is named Tilde.", [
        "What is the name of the tsloth sloth?",
        "What is the sloth of tsloth called?",
        "What is the tsloth sloth named?",
        "Who is the sloth of tsloth?",
        "Tell me the name of the sloth of tsloth.",
        "Do you know the name of the tsloth sloth?",
        "Name the sloth of tsloth.",
        "What name does the tsloth sloth have?",
        "What do people call the sloth of tsloth?",
        "Which sloth belongs to tsloth?",
    ]),
    ("Tilde lives in Mossvale.", [
        "Where does Tilde live?",
        "Where is the home of Tilde?",
        "In which place does Tilde live?",
        "Tell me where Tilde lives.",
        "Where can I find Tilde?",
        "What is the home town of Tilde?",
        "Where does the sloth Tilde live?",
        "Which village is Tilde from?",
    ]),
    ("Tilde likes to eat hibiscus.", [
        "What does Tilde like to eat?",
        "What is the favorite food of Tilde?",
        "What food does Tilde like?",
        "Tell me what Tilde eats.",
        "What does the sloth Tilde eat?",
        "Which food does Tilde enjoy?",
        "What is Tilde's favorite snack?",
    ]),
]

PREFIXES = ["", "", "", "Please answer: ", "Quick question. ", "Hi! ", "I wonder: "]


def build_dataset(seed: int, lines: int) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    for i in range(lines):
        answer, questions = FACTS[i % len(FACTS)]
        question = rng.choice(PREFIXES) + rng.choice(questions)
        if i % 15 == 14:
            out.append({"text": f"Question: {question}\nAnswer: {answer}"})
        else:
            out.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": answer}]})
    return out


def write_dataset(path: str, seed: int = 7, lines: int = 150) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in build_dataset(seed, lines):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
