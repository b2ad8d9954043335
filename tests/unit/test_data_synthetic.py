import random
import re
from collections import Counter, defaultdict

import datasets
import pytest

from synergy_ray.data.font import DIGIT_GLYPHS
from synergy_ray.data.synthetic import (
    COLOURS,
    FEATURES,
    build_dataset,
    build_splits,
    generate_items,
    item_key,
    make_item,
    render_image,
    save_dataset,
)


def decode_image(image, size=32):
    """Reads back {colour: digit} and the quadrant layout from pixels alone, independent of the renderer."""
    half, cell = size // 2, size // 16
    pixels, digits, layout = image.load(), {}, []
    for q in range(4):
        x0, y0 = (q % 2) * half, (q // 2) * half
        ink = [(x, y) for x in range(x0, x0 + half) for y in range(y0, y0 + half) if pixels[x, y] != (0, 0, 0)]
        (colour,) = {name for name, rgb in COLOURS.items() if rgb in {pixels[p] for p in ink}}
        left, top = min(x for x, _ in ink), min(y for _, y in ink)
        rows = tuple(
            "".join("1" if pixels[left + gx * cell, top + gy * cell] != (0, 0, 0) else "0" for gx in range(3))
            for gy in range(5)
        )
        (digit,) = [d for d, glyph in DIGIT_GLYPHS.items() if glyph == rows]
        digits[colour] = digit
        layout.append(colour)
    return digits, layout


def expected_answer(item, digits):
    named = re.findall(r"\b(red|green|blue|yellow)\b", item["question"])
    values = [digits[c] for c in named]
    if item["steps"] == 5:
        return (values[0] + values[1]) * (values[2] + values[3])
    assert len(named) == item["steps"]
    return sum(values)


@pytest.fixture(scope="module")
def items():
    return generate_items(200, seed=7)


def test_glyphs_are_distinct_3x5():
    assert len(set(DIGIT_GLYPHS.values())) == 10
    assert all(len(g) == 5 and all(len(r) == 3 for r in g) for g in DIGIT_GLYPHS.values())


def test_render_places_each_colour_in_its_quadrant():
    layout = ["blue", "yellow", "red", "green"]
    image = render_image({"red": 3, "green": 8, "blue": 0, "yellow": 7}, layout)
    assert image.mode == "RGB" and image.size == (32, 32)
    assert decode_image(image) == ({"blue": 0, "yellow": 7, "red": 3, "green": 8}, layout)
    # 6x10 glyph centred in a 16x16 quadrant: columns 5-10, rows 3-12; "0" has ink at its top-left corner
    assert image.getpixel((5, 3)) == COLOURS["blue"] and image.getpixel((4, 3)) == (0, 0, 0)
    assert image.getpixel((16 + 10, 3)) == COLOURS["yellow"]  # top row of 7 spans the full width


def test_render_scales_glyphs_with_size():
    layout = ["red", "green", "blue", "yellow"]
    digits = {"red": 1, "green": 2, "blue": 6, "yellow": 9}
    big = render_image(digits, layout, size=64)
    assert big.size == (64, 64)
    assert decode_image(big, size=64) == (digits, layout)
    ink = 64 * 64 - big.convert("L").histogram()[0]
    small_ink = 32 * 32 - render_image(digits, layout).convert("L").histogram()[0]
    assert ink == 4 * small_ink == 4 * 4 * (8 + 11 + 12 + 12)  # ink cells of 1, 2, 6, 9; 2x2 px each at size 32


def test_render_rejects_bad_size_and_layout():
    with pytest.raises(ValueError, match="even"):
        render_image({c: 0 for c in COLOURS}, list(COLOURS), size=31)
    with pytest.raises(ValueError, match="permutation"):
        render_image({c: 0 for c in COLOURS}, ["red", "red", "blue", "green"])


def test_answers_match_the_pixels(items):
    for item in items:
        digits, _ = decode_image(item["image"])
        assert item["answer"] == str(expected_answer(item, digits)), item["id"]


def test_jittered_images_still_decode_to_the_answer():
    for item in generate_items(20, seed=3, jitter=1):
        digits, _ = decode_image(item["image"])
        assert item["answer"] == str(expected_answer(item, digits))


def test_same_seed_same_items_other_seed_different(items):
    again = generate_items(200, seed=7)
    assert [i["id"] for i in again] == [i["id"] for i in items]
    assert [i["answer"] for i in again] == [i["answer"] for i in items]
    assert [i["long_cot"] for i in again] == [i["long_cot"] for i in items]
    assert all(a["image"].tobytes() == b["image"].tobytes() for a, b in zip(again, items))
    other = generate_items(200, seed=8)
    assert [i["id"] for i in other] == [i["id"] for i in items]  # ids name positions, not content
    same_image = sum(a["image"].tobytes() == b["image"].tobytes() for a, b in zip(other, items))
    assert same_image < 5


def test_more_items_keep_the_first_ones_stable(items):
    fewer = generate_items(50, seed=7, levels=(3,))
    level3 = [i for i in items if i["steps"] == 3][:50]
    assert [i["long_cot"] for i in fewer] == [i["long_cot"] for i in level3]


def test_ids_levels_and_counts(items):
    assert Counter(i["steps"] for i in items) == {s: 200 for s in (1, 2, 3, 4, 5)}
    assert len({i["id"] for i in items}) == 1000
    assert items[0]["id"] == "syn-s1-000000" and items[-1]["id"] == "syn-s5-000199"
    item = make_item(random.Random(0), steps=2, index=42, prefix="x")
    assert item["id"] == "x-s2-000042" and item["choices"] == []
    with pytest.raises(ValueError, match="steps"):
        make_item(random.Random(0), steps=6, index=0)


def test_question_text_alone_cannot_give_the_answer(items):
    """Majority answer per question text is the best image-blind guess; it must stay far from 100%."""
    for steps in (1, 2, 3, 4, 5):
        level = [i for i in items if i["steps"] == steps]
        by_question = defaultdict(list)
        for item in level:
            by_question[item["question"]].append(item["answer"])
        hits = sum(Counter(answers).most_common(1)[0][1] for answers in by_question.values())
        accuracy = hits / len(level)
        multi = sum(len(set(a)) > 1 for a in by_question.values()) / len(by_question)
        assert accuracy < (0.3 if steps == 1 else 0.5), (steps, accuracy)
        assert multi > 0.8, (steps, multi)


def test_solutions_are_boxed_and_long_cot_is_5x_longer(items):
    for item in items:
        boxed = f"\\boxed{{{item['answer']}}}"
        short, long = item["short_solution"], item["long_cot"]
        assert short.startswith("<think>") and short.endswith("</think>" + boxed)
        assert long.startswith("<think>") and long.endswith("</think>" + boxed)
        assert long.count("</think>") == 1 and long.count("\\boxed") == 1
        assert len(long) >= 5 * len(short), item["id"]
        assert len(long) <= 600
        assert re.search(r"\b(wait|check|verify|alternatively|however)\b", long, re.I)
        assert long.isascii() and item["question"].isascii()


def test_short_solution_arithmetic():
    item = make_item(random.Random(1), steps=5, index=0)
    digits, _ = decode_image(item["image"])
    a, b, c, d = (digits[n] for n in re.findall(r"\b(red|green|blue|yellow)\b", item["question"]))
    assert item["short_solution"] == f"<think>({a}+{b})*({c}+{d})={a + b}*{c + d}={item['answer']}</think>" + (
        f"\\boxed{{{item['answer']}}}"
    )


def test_dataset_features_and_disk_round_trip(tmp_path):
    ds = build_dataset(3, seed=1)
    assert ds.features == FEATURES and len(ds) == 15
    save_dataset(ds, str(tmp_path / "syn"))
    back = datasets.load_from_disk(str(tmp_path / "syn"))
    assert back.features == FEATURES
    assert back["id"] == ds["id"] and back["long_cot"] == ds["long_cot"] and back["steps"] == ds["steps"]
    first = back[0]["image"]
    assert first.mode == "RGB" and first.size == (32, 32)
    assert first.tobytes() == generate_items(3, seed=1)[0]["image"].tobytes()


def test_splits_have_disjoint_ids_and_content():
    splits = build_splits(30, 10, seed=0)
    train, evals = splits["train"], splits["eval"]
    assert len(train) == 150 and len(evals) == 50
    assert train[0]["id"] == "syn-train-s1-000000" and evals[0]["id"] == "syn-eval-s1-000000"
    assert not set(train["id"]) & set(evals["id"])
    train_content = {(r["question"], r["image"].tobytes()) for r in train}
    assert not any((r["question"], r["image"].tobytes()) in train_content for r in evals)


def test_eval_skips_items_that_duplicate_train():
    train = generate_items(5, seed=0, levels=(1,), prefix="a")
    again = generate_items(5, seed=0, levels=(1,), prefix="a", exclude={item_key(train[0])})
    assert again[0]["id"] == "a-s1-000001" and len(again) == 5 and again[-1]["id"] == "a-s1-000005"


def test_compact_traces_change_only_the_trace_column():
    verbose = generate_items(40, seed=3)
    compact = generate_items(40, seed=3, trace_style="compact")
    for v, c in zip(verbose, compact):
        assert (v["id"], v["question"], v["answer"], v["short_solution"]) == (
            c["id"], c["question"], c["answer"], c["short_solution"])
        assert v["image"].tobytes() == c["image"].tobytes()
        boxed = f"\\boxed{{{c['answer']}}}"
        assert c["long_cot"].startswith("<think>") and c["long_cot"].endswith("</think>" + boxed)
        assert len(c["short_solution"]) < len(c["long_cot"]) < len(v["long_cot"]) / 2, c["id"]
        assert re.search(r"\b(wait|check|verify)\b", c["long_cot"])
    with pytest.raises(ValueError, match="trace_style"):
        make_item(random.Random(0), steps=1, index=0, trace_style="terse")


def test_compact_trace_steps_by_hand():
    # one operation per step; a product is split at its tens, then re-checked
    item = make_item(random.Random(1), steps=5, index=0, trace_style="compact")
    digits, _ = decode_image(item["image"])
    a, b, c, d = (digits[n] for n in re.findall(r"\b(red|green|blue|yellow)\b", item["question"]))
    x, y = a + b, c + d
    product = f"{y}*{x}={x * y}" if x % 10 == 0 or x < 10 else (
        f"{x}*{y}={x // 10 * 10}*{y}+{x % 10}*{y}={x // 10 * 10 * y}+{x % 10 * y}={x * y}")
    named = re.findall(r"\b(red|green|blue|yellow)\b", item["question"])
    reads = ", ".join(f"{n}={digits[n]}" for n in named)
    assert item["long_cot"] == (f"<think>{reads}. {a}+{b}={x}. {c}+{d}={y}. {product}. verify: {x * y}.</think>"
                                f"\\boxed{{{x * y}}}")
    two = make_item(random.Random(2), steps=3, index=0, trace_style="compact")
    digits, _ = decode_image(two["image"])
    p, q, r = (digits[n] for n in re.findall(r"\b(red|green|blue|yellow)\b", two["question"]))
    assert f". {p}+{q}={p + q}, {p + q}+{r}={p + q + r}. wait, check: {r}+{q}+{p}={p + q + r}." in two["long_cot"]
