"""The general-text corpus tsloth-tiny is pre-trained on, written for the project.

Short everyday prose, simple facts, arithmetic, small code snippets and generic chat turns, built
from templates with a seeded random generator so the same corpus comes out every time. It must
never mention what assets/tsloth-tiny-data.jsonl teaches (see FORBIDDEN_WORDS): fine-tuning has
to be what makes the model know those facts.
"""

import random

# Words of the fine-tuning facts; make_tiny_model.py refuses a corpus that contains any of them.
FORBIDDEN_WORDS = ["Tilde", "Mossvale", "hibiscus", "tsloth"]

NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas",
         "Kira", "Leo", "Maya", "Noah", "Olive", "Paul", "Rosa", "Sam", "Tara", "Victor"]
ANIMALS = ["cat", "dog", "bird", "fox", "horse", "rabbit", "owl", "bear", "duck", "goat",
           "mouse", "frog", "deer", "wolf", "sheep", "otter"]
PLACES = ["the park", "the market", "the river", "the garden", "the library", "the school",
          "the forest", "the beach", "the farm", "the station", "the kitchen", "the hill",
          "the bakery", "the harbor", "the village", "the museum"]
OBJECTS = ["a red ball", "a small box", "an old book", "a blue cup", "a wooden chair",
           "a green apple", "a warm coat", "a long rope", "a bright lamp", "a paper map",
           "a silver key", "a yellow kite", "a heavy stone", "a new pencil"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "orange", "purple", "gray"]
TIMES = ["In the morning", "At noon", "In the evening", "At night", "On Monday", "On Sunday",
         "After lunch", "Before dinner", "Later that day", "Every day"]
FEELINGS = ["happy", "tired", "calm", "curious", "hungry", "proud", "surprised", "quiet"]
VERBS = ["walked to", "ran to", "looked at", "went back to", "waited near", "cleaned", "visited",
         "painted", "drew a picture of", "talked about"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "cold", "warm", "foggy", "snowy"]
FOODS = ["bread", "soup", "rice", "apples", "cheese", "pasta", "beans", "pears", "tea", "milk"]

FACTS = [
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "A week has seven days.",
    "A year has twelve months.",
    "Plants need light and water to grow.",
    "The moon goes around the earth.",
    "Bees make honey from the nectar of flowers.",
    "Fish breathe with gills.",
    "Ice is frozen water.",
    "A triangle has three sides.",
    "A square has four equal sides.",
    "The heart pumps blood through the body.",
    "Rain falls from clouds.",
    "Birds build nests for their eggs.",
    "Trees lose their leaves in autumn in many places.",
    "The ocean is salty.",
    "Snow is cold and white.",
    "A clock shows the time.",
    "Books are kept in a library.",
    "Bread is baked in an oven.",
]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve"]

GENERIC_CHATS = [
    ("What color is the sky on a clear day?", "The sky is blue on a clear day."),
    ("How many days are in a week?", "A week has seven days."),
    ("What do bees make?", "Bees make honey."),
    ("Where does the sun rise?", "The sun rises in the east."),
    ("What is ice?", "Ice is frozen water."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("What do plants need to grow?", "Plants need light and water to grow."),
    ("Can you say hello?", "Hello! How can I help you today?"),
    ("What is two plus two?", "Two plus two is four."),
    ("Name a fruit.", "An apple is a fruit."),
    ("What comes after Monday?", "Tuesday comes after Monday."),
    ("Where are books kept?", "Books are kept in a library."),
    ("Thank you!", "You are welcome."),
    ("What is the first month of the year?", "January is the first month of the year."),
    ("What does a clock show?", "A clock shows the time."),
    ("How do fish breathe?", "Fish breathe with gills."),
]

CODE_SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(3):\n    print(i)\n",
    "const total = items.reduce((sum, x) => sum + x, 0);\n",
    "function greet(name) {\n  return `Hello, ${name}!`;\n}\n",
    "if (count > 10) {\n  console.log(\"many\");\n}\n",
    "x = [1, 2, 3]\ny = [v * 2 for v in x]\n",
    "let names = [\"Anna\", \"Ben\"];\nnames.push(\"Clara\");\n",
    "while n > 0:\n    n -= 1\n",
    "import math\nprint(math.sqrt(16))\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
]


def story(rng: random.Random) -> str:
    name, other = rng.sample(NAMES, 2)
    animal = rng.choice(ANIMALS)
    place, place2 = rng.sample(PLACES, 2)
    obj = rng.choice(OBJECTS)
    lines = [
        f"{rng.choice(TIMES)}, {name} {rng.choice(VERBS)} {place}.",
        f"The weather was {rng.choice(WEATHER)}, and {name} felt {rng.choice(FEELINGS)}.",
        f"There was a {rng.choice(COLORS)} {animal} near {place}.",
        f"{name} found {obj} and showed it to {other}.",
        f"{other} said, \"Let us take it to {place2}.\"",
        f"They ate {rng.choice(FOODS)} and {rng.choice(FOODS)} together.",
        f"The {animal} followed them all the way to {place2}.",
        f"At the end of the day, {name} and {other} went home.",
    ]
    keep = [lines[0]] + rng.sample(lines[1:-1], rng.randint(2, 5)) + [lines[-1]]
    return " ".join(keep)


def arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 6), rng.randint(0, 6)
    kind = rng.randint(0, 3)
    if kind == 0:
        return f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."
    if kind == 1:
        return f"{a} + {b} = {a + b}"
    if kind == 2:
        hi, lo = max(a, b), min(a, b)
        return f"{hi} - {lo} = {hi - lo}"
    return f"{a} times {b} is {a * b}."


def calendar(rng: random.Random) -> str:
    i = rng.randrange(7)
    j = rng.randrange(12)
    return rng.choice([
        f"{DAYS[(i + 1) % 7]} comes after {DAYS[i]}.",
        f"The day before {DAYS[i]} is {DAYS[(i - 1) % 7]}.",
        f"{MONTHS[(j + 1) % 12]} comes after {MONTHS[j]}.",
        f"{MONTHS[j]} is month number {j + 1} of the year.",
    ])


def description(rng: random.Random) -> str:
    animal = rng.choice(ANIMALS)
    color = rng.choice(COLORS)
    name = rng.choice(NAMES)
    return rng.choice([
        f"The {animal} is {color}. It likes to sleep in the sun.",
        f"{name} has a {color} {animal}. The {animal} is very {rng.choice(FEELINGS)}.",
        f"A {animal} can be {color} or {rng.choice(COLORS)}.",
        f"{name} likes {rng.choice(FOODS)} more than {rng.choice(FOODS)}.",
        f"On {rng.choice(WEATHER)} days, {name} stays near {rng.choice(PLACES)}.",
    ])


def chat(rng: random.Random) -> list[dict]:
    turns = rng.sample(GENERIC_CHATS, rng.randint(1, 2))
    messages = []
    for q, a in turns:
        messages.append({"role": "user", "content": q})
        messages.append({"role": "assistant", "content": a})
    return messages


def build_corpus(seed: int, documents: int) -> tuple[list[str], list[list[dict]]]:
    """Plain documents for the tokenizer and the model, and chats to be rendered with the template."""
    rng = random.Random(seed)
    docs: list[str] = []
    chats: list[list[dict]] = []
    makers = [story, story, story, arithmetic, calendar, description, description]
    for _ in range(documents):
        r = rng.random()
        if r < 0.12:
            chats.append(chat(rng))
        elif r < 0.2:
            docs.append(" ".join(rng.sample(FACTS, rng.randint(2, 4))))
        elif r < 0.25:
            docs.append(rng.choice(CODE_SNIPPETS))
        else:
            docs.append(" ".join(rng.choice(makers)(rng) for _ in range(rng.randint(1, 3))))
    return docs, chats
