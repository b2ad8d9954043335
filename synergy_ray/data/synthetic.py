"""Procedural visual reasoning questions whose difficulty is the number of reasoning steps.

Each image has four quadrants on a black background; each quadrant holds one digit drawn in its own colour
(red, green, blue, yellow, permuted per image). With 32x32 images and Idefics3's 4 image tokens, each token sees
exactly one quadrant, so the model must find the named colour before it can read the digit. Steps:

    1: read one digit            2-4: add the digits of 2-4 named colours            5: (a+b)*(c+d)

The question text names colours only, so the same text recurs with many answers: the answer depends on the image.
Every item is generated from its own rng seeded by (prefix, seed, steps, index), so ids are stable: asking for
more items per level keeps the earlier ones, and a different prefix (train vs eval) gives different items.
"""

import hashlib
import random

import datasets
from PIL import Image

from synergy_ray.data.font import GLYPH_HEIGHT, GLYPH_WIDTH, glyph_cells

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (40, 80, 255),
    "yellow": (240, 220, 20),
}
BACKGROUND = (0, 0, 0)
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")  # layout order
LEVELS = (1, 2, 3, 4, 5)
COLOURS_PER_LEVEL = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4}

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "steps": datasets.Value("int32"),
        "short_solution": datasets.Value("string"),
        "long_cot": datasets.Value("string"),
    }
)


def render_image(
    digits_by_colour: dict[str, int],
    layout: list[str],
    size: int = 32,
    offsets: list[tuple[int, int]] | None = None,
) -> Image.Image:
    """Draw the digit of each colour in `layout` (quadrants TL, TR, BL, BR), centred in its quadrant.

    Glyph cells are size//16 pixels wide (6x10 px digits at size 32), so other sizes scale proportionally.
    `offsets` shifts each glyph by (dx, dy) pixels, clamped so the glyph stays inside its quadrant.
    """
    if size < 16 or size % 2:
        raise ValueError(f"image size must be even and >= 16, got {size}")
    if sorted(layout) != sorted(COLOURS):
        raise ValueError(f"layout must be a permutation of {list(COLOURS)}, got {layout}")
    half, cell = size // 2, size // 16
    glyph_w, glyph_h = GLYPH_WIDTH * cell, GLYPH_HEIGHT * cell
    image = Image.new("RGB", (size, size), BACKGROUND)
    pixels = image.load()
    for quadrant, colour in enumerate(layout):
        dx, dy = offsets[quadrant] if offsets else (0, 0)
        left = min(max((half - glyph_w) // 2 + dx, 0), half - glyph_w) + (quadrant % 2) * half
        top = min(max((half - glyph_h) // 2 + dy, 0), half - glyph_h) + (quadrant // 2) * half
        for gx, gy in glyph_cells(digits_by_colour[colour]):
            for px in range(cell):
                for py in range(cell):
                    pixels[left + gx * cell + px, top + gy * cell + py] = COLOURS[colour]
    return image


def question_text(steps: int, named: list[str]) -> str:
    if steps == 1:
        return f"What is the {named[0]} digit?"
    if steps == 5:
        a, b, c, d = named
        return f"Using the coloured digits, what is ({a}+{b})*({c}+{d})?"
    listed = " and ".join([", ".join(named[:-1]), named[-1]])
    return f"What is the sum of the {listed} digits?"


def solve(steps: int, values: list[int]) -> int:
    """The answer from the digits of the named colours, in question order."""
    if steps == 5:
        return (values[0] + values[1]) * (values[2] + values[3])
    return sum(values)


def short_solution(steps: int, named: list[str], values: list[int]) -> str:
    """The short response: minimal arithmetic inside <think>, then the boxed answer."""
    answer = solve(steps, values)
    if steps == 1:
        work = f"{named[0]}={values[0]}"
    elif steps == 5:
        a, b, c, d = values
        work = f"({a}+{b})*({c}+{d})={a + b}*{c + d}={answer}"
    else:
        work = "+".join(map(str, values)) + f"={answer}"
    return f"<think>{work}</think>\\boxed{{{answer}}}"


_OPENERS = (
    "Let me find the digits I need.",
    "I need the digit of each named colour.",
    "First I locate each coloured digit.",
)
_READINGS = (
    "The {c} digit is in the {p}: {d}.",
    "The {p} quadrant is {c}, showing {d}.",
    "In the {p} I see the {c} digit {d}.",
)
_RECHECKS = (
    "Wait, let me check the {c} digit again. It is {d}, yes.",
    "Let me verify the {c} one: the {p} shows {d}. Correct.",
    "Wait, is the {c} digit really {d}? Looking again, yes.",
)
_CLOSERS = ("So the answer is {a}.", "Therefore the answer is {a}.", "The answer is {a}.")


def _chain(values: list[int]) -> str:
    """Partial sums, one addition at a time: '7 + 5 = 12, 12 + 3 = 15'."""
    total, parts = values[0], []
    for v in values[1:]:
        parts.append(f"{total} + {v} = {total + v}")
        total += v
    return ", ".join(parts)


def _times(x: int, y: int) -> str:
    """A decomposed product as a second route to the same number: '12 * 4 = 10 * 4 + 2 * 4 = 40 + 8 = 48'."""
    tens, ones = divmod(x, 10)
    if tens == 0 or ones == 0:
        return f"{y} * {x} = {x * y}"
    return f"{x} * {y} = {tens * 10} * {y} + {ones} * {y} = {tens * 10 * y} + {ones * y} = {x * y}"


def long_cot(rng: random.Random, steps: int, named: list[str], values: list[int], layout: list[str]) -> str:
    """A verbose trace in the style of long-CoT SFT data: read, compute, doubt, re-check, answer."""
    answer = solve(steps, values)
    where = {colour: POSITIONS[i] for i, colour in enumerate(layout)}
    lines = [rng.choice(_OPENERS)]
    lines += [rng.choice(_READINGS).format(c=c, p=where[c], d=v) for c, v in zip(named, values)]
    if steps == 1:
        other = rng.choice([c for c in layout if c != named[0]])
        lines.append(f"So {named[0]} = {values[0]}.")
        lines.append(f"However, I must not confuse it with the {other} digit in the {where[other]}.")
    elif steps == 5:
        a, b, c, d = values
        lines.append(f"First {named[0]} + {named[1]} = {a} + {b} = {a + b}.")
        lines.append(f"Then {named[2]} + {named[3]} = {c} + {d} = {c + d}.")
        lines.append(f"Now {a + b} * {c + d} = {answer}.")
        lines.append(f"Let me verify the product: {_times(a + b, c + d)}.")
    else:
        lines.append(f"Adding: {_chain(values)}.")
        if steps == 2:
            lines.append(f"Let me check in the other order: {values[1]} + {values[0]} = {answer}.")
        else:
            lines.append(f"Alternatively, in reverse order: {_chain(values[::-1])}. Same.")
    i = rng.randrange(len(named))
    lines.append(rng.choice(_RECHECKS).format(c=named[i], p=where[named[i]], d=values[i]))
    lines.append(rng.choice(_CLOSERS).format(a=answer))
    return "<think>" + " ".join(lines) + f"</think>\\boxed{{{answer}}}"


def compact_cot(steps: int, named: list[str], values: list[int]) -> str:
    """A shorter trace with the same moves: read each digit as the short answer does ('red=7'), one operation
    per step, then a re-check. 2-5x the short solution rather than ~10x, for models too small to carry a long
    trace (see `data.trace_style`)."""
    answer = solve(steps, values)
    reads = ", ".join(f"{c}={v}" for c, v in zip(named, values))
    if steps == 1:
        work = f"{reads}. check {named[0]} again: {values[0]}."
    elif steps == 5:
        a, b, c, d = values
        product = _times(a + b, c + d).replace(" * ", "*").replace(" = ", "=").replace(" + ", "+")
        work = f"{reads}. {a}+{b}={a + b}. {c}+{d}={c + d}. {product}. verify: {answer}."
    else:
        chain = _chain(values).replace(" + ", "+").replace(" = ", "=")
        work = f"{reads}. {chain}. wait, check: {'+'.join(map(str, values[::-1]))}={answer}."
    return f"<think>{work}</think>\\boxed{{{answer}}}"


TRACE_STYLES = ("verbose", "compact")


def make_item(
    rng: random.Random,
    steps: int,
    index: int,
    image_size: int = 32,
    prefix: str = "syn",
    jitter: int = 0,
    trace_style: str = "verbose",
) -> dict:
    """One item of difficulty `steps` (1-5). `jitter` > 0 shifts each glyph up to that many pixels per axis.
    `trace_style` picks the `long_cot` column: "verbose" (`long_cot`) or "compact" (`compact_cot`); the image,
    question and answer do not depend on it."""
    if trace_style not in TRACE_STYLES:
        raise ValueError(f"trace_style must be one of {TRACE_STYLES}, got {trace_style!r}")
    if steps not in COLOURS_PER_LEVEL:
        raise ValueError(f"steps must be one of {LEVELS}, got {steps}")
    layout = rng.sample(list(COLOURS), len(COLOURS))
    digits = {colour: rng.randrange(10) for colour in COLOURS}
    named = rng.sample(list(COLOURS), COLOURS_PER_LEVEL[steps])
    values = [digits[c] for c in named]
    offsets = None
    if jitter > 0:
        offsets = [(rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)) for _ in layout]
    return {
        "id": f"{prefix}-s{steps}-{index:06d}",
        "image": render_image(digits, layout, image_size, offsets),
        "question": question_text(steps, named),
        "answer": str(solve(steps, values)),
        "choices": [],
        "steps": steps,
        "short_solution": short_solution(steps, named, values),
        "long_cot": long_cot(rng, steps, named, values, layout) if trace_style == "verbose"
        else compact_cot(steps, named, values),
    }


def item_key(item: dict) -> str:
    """Identifies an item's content (question + pixels), to keep eval items out of the train set."""
    return hashlib.sha1(item["question"].encode() + item["image"].tobytes()).hexdigest()


def generate_items(
    num_per_level: int,
    seed: int,
    image_size: int = 32,
    levels: tuple[int, ...] = LEVELS,
    prefix: str = "syn",
    jitter: int = 0,
    exclude: set[str] | None = None,
    trace_style: str = "verbose",
) -> list[dict]:
    """`num_per_level` items for each level, skipping any whose `item_key` is in `exclude` (ids then have gaps)."""
    items = []
    for steps in levels:
        index = kept = 0
        while kept < num_per_level:
            rng = random.Random(f"{prefix}:{seed}:{steps}:{index}")
            item = make_item(rng, steps, index, image_size, prefix, jitter, trace_style)
            index += 1
            if exclude and item_key(item) in exclude:
                continue
            items.append(item)
            kept += 1
    return items


def build_dataset(
    num_per_level: int, seed: int, image_size: int = 32, prefix: str = "syn", jitter: int = 0
) -> datasets.Dataset:
    items = generate_items(num_per_level, seed, image_size, prefix=prefix, jitter=jitter)
    return datasets.Dataset.from_list(items, features=FEATURES)


def build_splits(
    num_train_per_level: int,
    num_eval_per_level: int,
    seed: int,
    image_size: int = 32,
    prefix: str = "syn",
    jitter: int = 0,
    num_val_per_level: int = 0,
    trace_style: str = "verbose",
) -> datasets.DatasetDict:
    """Train, eval (and val) sets with their own id prefixes ("syn-train-...", "syn-eval-...") and rng streams.

    An eval or val item identical to an item of an earlier split (same question and pixels, rare) is dropped
    and replaced, so the validation set that picks checkpoints never overlaps the held-out test set.
    """
    seen: set[str] = set()
    splits = {}
    for name, n in (("train", num_train_per_level), ("eval", num_eval_per_level), ("val", num_val_per_level)):
        if n <= 0:
            continue
        items = generate_items(n, seed, image_size, prefix=f"{prefix}-{name}", jitter=jitter, exclude=seen,
                               trace_style=trace_style)
        seen |= {item_key(item) for item in items}
        splits[name] = datasets.Dataset.from_list(items, features=FEATURES)
    return datasets.DatasetDict(splits)


def save_dataset(ds: datasets.Dataset | datasets.DatasetDict, path: str) -> None:
    """Writes with `save_to_disk`; read back with `datasets.load_from_disk` or `load_user_dataset`."""
    ds.save_to_disk(path)
