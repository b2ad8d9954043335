"""How a learner rank cuts its share of a mini-batch into micro-batches: by length, with little padding.

A micro-batch costs about rows x its longest row (every row is padded to it), so the rows are taken shortest
first (`length_order`, fillers last: `core.sharding`) and cut where the padding is least:

- `greedy_sizes`: consecutive micro-batches of at most `max_rows` rows and at most `max_tokens` padded tokens
  (a row longer than the budget goes alone), which bounds each micro-batch's activation memory by tokens;
- `least_padding_sizes`: exactly `count` consecutive micro-batches within the same bounds with the fewest
  padded tokens in total (dynamic programming over cut points).

Under ZeRO-3 every forward and backward is a collective, so every rank must run the same number of
micro-batches: `plan_ranks` takes the largest greedy count over the ranks and cuts every rank's share into
exactly that many. A mini-batch's gradient is a sum over its micro-batches, so none of this changes the update,
only the padding.
"""

from __future__ import annotations

from typing import Sequence


def length_order(lengths: Sequence[int], fillers: int = 0, sort: bool = True) -> list[int]:
    """Indices of the real rows (all but the last `fillers`), shortest first when `sort`, then the fillers."""
    real = len(lengths) - fillers
    order = sorted(range(real), key=lambda i: lengths[i]) if sort else list(range(real))
    return order + list(range(real, len(lengths)))


def padded_tokens(lengths: Sequence[int], sizes: Sequence[int]) -> int:
    """Tokens the micro-batches of `sizes` (consecutive, over `lengths`) hold once padded."""
    total, start = 0, 0
    for n in sizes:
        total += n * max(lengths[start:start + n])
        start += n
    return total


def greedy_sizes(lengths: Sequence[int], max_rows: int, max_tokens: int | None = None) -> list[int]:
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    sizes, rows, longest = [], 0, 0
    for n in lengths:
        wider = max(longest, n)
        if rows and (rows == max_rows or (max_tokens is not None and (rows + 1) * wider > max_tokens)):
            sizes.append(rows)
            rows, wider = 0, n
        rows, longest = rows + 1, wider
    return sizes + [rows] if rows else sizes


def least_padding_sizes(lengths: Sequence[int], count: int, max_rows: int, max_tokens: int | None = None) -> list[int]:
    n = len(lengths)
    if not 0 < count <= n or count * max_rows < n:
        raise ValueError(f"cannot cut {n} rows into {count} micro-batches of at most {max_rows}")
    inf = float("inf")
    # best[j][i]: least padded tokens of the first i rows in j micro-batches; cut[j][i]: where the last starts
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    cut = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0
    for j in range(1, count + 1):
        for i in range(j, n + 1):
            longest = 0
            for start in range(i - 1, max(j - 1, i - max_rows) - 1, -1):  # the last micro-batch is rows start..i-1
                longest = max(longest, lengths[start])
                if max_tokens is not None and i - start > 1 and (i - start) * longest > max_tokens:
                    break  # over the budget, and longer still further back (a row alone always fits)
                cost = best[j - 1][start] + (i - start) * longest
                if cost < best[j][i]:
                    best[j][i], cut[j][i] = cost, start
    if best[count][n] == inf:
        raise ValueError(f"cannot cut {n} rows into {count} micro-batches within {max_tokens} tokens")
    sizes, i = [], n
    for j in range(count, 0, -1):
        sizes.append(i - cut[j][i])
        i = cut[j][i]
    return sizes[::-1]


def plan_ranks(shares: Sequence[Sequence[int]], fillers: Sequence[int], max_rows: int, max_tokens: int | None,
               sort: bool = True) -> list[tuple[list[int], list[int]]]:
    """Per rank (its rows' lengths, its filler count): (the order its rows run in, its micro-batch sizes); every
    rank gets the same number of micro-batches."""
    orders = [length_order(lengths, fill, sort) for lengths, fill in zip(shares, fillers)]
    ordered = [[lengths[i] for i in order] for lengths, order in zip(shares, orders)]
    count = max((len(greedy_sizes(x, max_rows, max_tokens)) for x in ordered if x), default=0)
    return [(order, least_padding_sizes(x, count, max_rows, max_tokens) if x else [])
            for order, x in zip(orders, ordered)]
