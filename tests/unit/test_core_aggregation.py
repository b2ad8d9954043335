import pytest
import torch

from synergy_ray.core.aggregation import aggregate_tokens, masked_mean


def test_masked_mean_over_all_and_per_row():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)  # (1 + 2 + 4) / 3
    assert masked_mean(x, mask, dim=-1).tolist() == pytest.approx([1.5, 4.0])


def test_empty_rows_give_zero_not_nan():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    mask = torch.zeros(2, 2)
    for mode in ("token_mean", "seq_mean"):
        out = aggregate_tokens(x, mask, mode)
        out.backward()
        assert out.item() == 0.0
        assert torch.isfinite(x.grad).all()
        x.grad = None


def test_inf_and_nan_under_the_mask_do_not_leak():
    values = torch.tensor([[1.0, float("nan")], [3.0, float("inf")]])
    mask = torch.tensor([[1, 0], [1, 0]])
    assert aggregate_tokens(values, mask, "token_mean").item() == 2.0
    assert aggregate_tokens(values, mask, "seq_mean").item() == 2.0


def test_token_mean_and_seq_mean_differ_on_unequal_lengths():
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    assert aggregate_tokens(values, mask, "token_mean").item() == pytest.approx(1.6)  # (4 + 4) / 5 tokens
    assert aggregate_tokens(values, mask, "seq_mean").item() == pytest.approx(2.5)  # (1 + 4) / 2 sequences


def test_seq_mean_counts_an_empty_row_as_a_zero_sequence():
    values = torch.tensor([[2.0, 2.0], [9.0, 9.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert aggregate_tokens(values, mask, "seq_mean").item() == pytest.approx(1.0)  # (2 + 0) / 2


def test_bad_mode_and_shape_are_rejected():
    with pytest.raises(ValueError, match="unknown aggregation 'sum'"):
        aggregate_tokens(torch.ones(1, 2), torch.ones(1, 2), "sum")
    with pytest.raises(ValueError, match="same shape"):
        aggregate_tokens(torch.ones(1, 2), torch.ones(1, 3))


def test_sharded_contributions_add_up_to_the_unsplit_aggregate():
    from synergy_ray.core.aggregation import aggregate_sharded

    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [5.0, 6.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    for mode in ("token_mean", "seq_mean"):
        parts = aggregate_sharded(values[:2], mask[:2], mode, 6, 3) + aggregate_sharded(values[2:], mask[2:], mode, 6, 3)
        assert torch.allclose(parts, aggregate_tokens(values, mask, mode))
    # token_mean by hand: (1+2+3+4+5+6)/6 = 3.5; seq_mean: (2 + 4 + 5.5)/3
    assert aggregate_sharded(values, mask, "token_mean", 6, 3).item() == 3.5
    assert abs(aggregate_sharded(values, mask, "seq_mean", 6, 3).item() - 11.5 / 3) < 1e-6
