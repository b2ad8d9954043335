"""Difficulty-aware sampling: estimate each question's current pass rate, sample hard ones more often.

Pass-rate estimate: a discounted Beta-Bernoulli posterior mean. Each question keeps counts (c correct, w wrong);
an update multiplies both by `decay` and adds the new rollout's counts, and
    pass_rate = (prior_correct + c) / (prior_correct + prior_wrong + c + w).
Unseen questions sit at the prior mean (0.5 for the default Beta(1, 1)). decay=1 is the plain posterior;
decay < 1 forgets old evidence because the policy keeps changing (0.5: the previous group counts half).

Weights: q_i = (1 - p_i)^focus normalised, then w = floor * uniform + (1 - floor) * q, so focus=0 is uniform and
every question keeps at least `floor` of its uniform share: always-solved questions stay in the mix (the paper's
ablation found that dropping them hurt). Batches are drawn without replacement.

`informative_weights` centres the draw on questions that give GRPO a gradient instead: q_i = p_i (1 - p_i), the
variance of a question's reward, largest at p = 0.5 and zero at 0 and 1, with the same floor. A strategy picks
its weight function (`Strategy.sampling_weights`). Left out: per-level quotas.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

QuestionId = Hashable  # str or int: state_dict must survive JSON


class PassRateTable:
    """Per-question discounted Beta counts; see the module docstring for the estimate."""

    def __init__(self, prior_correct: float = 1.0, prior_wrong: float = 1.0, decay: float = 0.5):
        if prior_correct <= 0 or prior_wrong <= 0 or not 0 < decay <= 1:
            raise ValueError("priors must be > 0 and decay in (0, 1]")
        self.prior_correct, self.prior_wrong, self.decay = prior_correct, prior_wrong, decay
        self._counts: dict[QuestionId, tuple[float, float]] = {}

    def update(self, qid: QuestionId, num_correct: int, num_samples: int) -> None:
        if num_samples < 1 or not 0 <= num_correct <= num_samples:
            raise ValueError(f"need 0 <= num_correct <= num_samples, num_samples >= 1; got {num_correct}/{num_samples}")
        correct, wrong = self._counts.get(qid, (0.0, 0.0))
        self._counts[qid] = (
            self.decay * correct + num_correct,
            self.decay * wrong + (num_samples - num_correct),
        )

    def pass_rate(self, qid: QuestionId) -> float:
        correct, wrong = self._counts.get(qid, (0.0, 0.0))
        return (self.prior_correct + correct) / (self.prior_correct + self.prior_wrong + correct + wrong)

    def state_dict(self) -> dict:
        return {"counts": [[qid, c, w] for qid, (c, w) in self._counts.items()]}

    def load_state_dict(self, state: dict) -> None:
        self._counts = {qid: (float(c), float(w)) for qid, c, w in state["counts"]}


class PooledPassRateTable(PassRateTable):
    """Per-question counts on top of a prior pooled over the question's bucket (its level or design steps).

    With thousands of questions and a few hundred draws, most questions are seen once or never, and a plain
    table holds them all at the prior 0.5. Here a question's prior mean is its bucket's current pass rate,
        m_b = (1 + C_b) / (2 + C_b + W_b),   C_b, W_b discounted by `bucket_decay` at each of the bucket's updates,
    worth `strength` pseudo-samples:  pass_rate = (strength * m_b + c) / (strength + c + w).
    """

    def __init__(self, bucket_of: dict[QuestionId, Hashable], strength: float = 2.0, bucket_decay: float = 0.95,
                 decay: float = 0.5):
        super().__init__(decay=decay)
        if strength <= 0 or not 0 < bucket_decay <= 1:
            raise ValueError("strength must be > 0 and bucket_decay in (0, 1]")
        self.bucket_of, self.strength, self.bucket_decay = dict(bucket_of), strength, bucket_decay
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def update(self, qid: QuestionId, num_correct: int, num_samples: int) -> None:
        super().update(qid, num_correct, num_samples)
        b = self.bucket_of[qid]
        correct, wrong = self._buckets.get(b, (0.0, 0.0))
        d = self.bucket_decay
        self._buckets[b] = (d * correct + num_correct, d * wrong + num_samples - num_correct)

    def bucket_rate(self, bucket: Hashable) -> float:
        correct, wrong = self._buckets.get(bucket, (0.0, 0.0))
        return (1.0 + correct) / (2.0 + correct + wrong)

    def pass_rate(self, qid: QuestionId) -> float:
        correct, wrong = self._counts.get(qid, (0.0, 0.0))
        m = self.bucket_rate(self.bucket_of[qid])
        return (self.strength * m + correct) / (self.strength + correct + wrong)

    def state_dict(self) -> dict:
        return super().state_dict() | {"buckets": [[b, c, w] for b, (c, w) in self._buckets.items()]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._buckets = {b: (float(c), float(w)) for b, c, w in state.get("buckets", [])}


def curriculum_weights(pass_rates: Sequence[float], focus: float, floor: float) -> np.ndarray:
    """Sampling probabilities from pass rates: floor * uniform + (1 - floor) * normalised (1 - p)^focus."""
    if focus < 0:
        raise ValueError(f"need focus >= 0, got focus={focus}")
    p = _checked(pass_rates, floor)
    uniform = np.full_like(p, 1.0 / p.size)
    hardness = (1.0 - p) ** focus  # numpy: 0.0 ** 0 == 1, so focus=0 is uniform even at p=1
    total = hardness.sum()
    focused = hardness / total if total > 0 else uniform  # every question always solved: nothing to favour
    return floor * uniform + (1.0 - floor) * focused


def informative_weights(pass_rates: Sequence[float], floor: float) -> np.ndarray:
    """Sampling probabilities centred on pass rate 0.5: floor * uniform + (1 - floor) * normalised p (1 - p)."""
    p = _checked(pass_rates, floor)
    uniform = np.full_like(p, 1.0 / p.size)
    spread = p * (1.0 - p)
    total = spread.sum()
    return floor * uniform + (1.0 - floor) * (spread / total if total > 0 else uniform)


def _checked(pass_rates: Sequence[float], floor: float) -> np.ndarray:
    p = np.asarray(pass_rates, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("pass_rates must be a non-empty 1-D sequence of values in [0, 1]")
    if not 0 < floor <= 1:
        raise ValueError(f"need 0 < floor <= 1, got floor={floor}")
    return p


class CurriculumSampler:
    """Draws question ids weighted by `curriculum_weights`, learning pass rates from rollout results.

    Stateful and resumable: `state_dict()` is JSON-serialisable and holds the pass-rate counts and the RNG state,
    so a restored sampler draws exactly the batches the original would have drawn.
    """

    def __init__(
        self,
        question_ids: Sequence[QuestionId],
        focus: float = 2.0,
        floor: float = 0.1,
        seed: int = 0,
        table: PassRateTable | None = None,
        weigh: Callable[[list[float]], np.ndarray] | None = None,
    ):
        if len(set(question_ids)) != len(question_ids) or not question_ids:
            raise ValueError("question_ids must be non-empty and unique")
        curriculum_weights([0.5], focus, floor)  # validates focus and floor up front
        self.question_ids = list(question_ids)
        self._known = set(self.question_ids)
        self.focus, self.floor = focus, floor
        # pass rates -> sampling probabilities; default `curriculum_weights` with this focus and floor
        self.weigh = weigh or (lambda rates: curriculum_weights(rates, self.focus, self.floor))
        self.table = table or PassRateTable()
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def weights(self) -> np.ndarray:
        rates = [self.table.pass_rate(qid) for qid in self.question_ids]
        return self.weigh(rates)

    def sample(self, n: int) -> list[QuestionId]:
        """`n` distinct question ids (no repeats within a batch)."""
        if not 0 < n <= len(self.question_ids):
            raise ValueError(f"can draw 1..{len(self.question_ids)} distinct questions, asked for {n}")
        picks = self._rng.choice(len(self.question_ids), size=n, replace=False, p=self.weights())
        return [self.question_ids[i] for i in picks]

    def update(self, qid: QuestionId, num_correct: int, num_samples: int) -> None:
        if qid not in self._known:
            raise KeyError(f"unknown question id {qid!r}")
        self.table.update(qid, num_correct, num_samples)

    def pass_rate(self, qid: QuestionId) -> float:
        return self.table.pass_rate(qid)

    def state_dict(self) -> dict:
        return {
            "question_ids": list(self.question_ids),
            "table": self.table.state_dict(),
            "rng": self._rng.bit_generator.state,  # plain dict of str and int
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state["question_ids"]) != self.question_ids:
            raise ValueError("state was saved for a different list of question ids")
        self.table.load_state_dict(state["table"])
        self._rng.bit_generator.state = state["rng"]
