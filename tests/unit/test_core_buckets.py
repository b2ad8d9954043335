from synergy_ray.core.buckets import layer_key, plan_buckets
from synergy_ray.core.sharding import FILLER, deal

LAYER = "model.text_model.layers.{}.{}"


def test_layer_key_cuts_after_the_first_number():
    assert layer_key("model.text_model.layers.3.self_attn.q_proj.weight") == "model.text_model.layers.3"
    assert layer_key("lm_head.weight") == "lm_head.weight"


def test_buckets_keep_layers_whole_and_respect_the_bound():
    sizes = [("model.embed.weight", 40)]
    for i in range(3):
        sizes += [(LAYER.format(i, "q_proj.weight"), 10), (LAYER.format(i, "k_proj.weight"), 10),
                  (LAYER.format(i, "v_proj.weight"), 10)]  # 30 bytes a layer
    sizes.append(("lm_head.weight", 70))
    buckets = plan_buckets(sizes, 64)
    # embed (40) alone: 40 + 30 > 64; layers 0 and 1 together (60); layer 2 (30); lm_head (70 > 64) alone.
    assert [len(b) for b in buckets] == [1, 6, 3, 1]
    assert [n for b in buckets for n in b] == [n for n, _ in sizes]  # each name once, model order
    assert buckets[3] == ["lm_head.weight"]


def test_deal_gives_every_rank_the_same_length():
    assert deal(5, 2) == [[0, 2, 4], [1, 3, FILLER]]
    assert deal(1, 3) == [[0], [FILLER], [FILLER]]
    assert deal(4, 1) == [[0, 1, 2, 3]]
