"""Evaluation through a served model: the official `openai` client instead of an in-process vLLM engine.

Only the way completions are obtained differs from offline evaluation; scoring and the per-level report are
`evaluator.build_report`, shared. Each question is one chat request with `n=k` and the eval section's sampling
settings (`top_k` as vLLM's extra parameter), its image sent as a PNG data URL and its text as the training
prompt's (`prompting.question_text`), so a server using the model's chat template sees the offline prompt.
At most `concurrency` requests are in flight (a thread pool of that size over the blocking client).

OpenAI's response counts completion tokens only in total (`usage.completion_tokens`), so each completion gets
the request's mean length; that is exact for what the report uses, the per-question mean length.
"""

from __future__ import annotations

import base64
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from synergy_ray.config import SynergyConfig
from synergy_ray.core.eval_stats import Completion
from synergy_ray.evaluation.evaluator import build_report, load_dataset

REQUEST_TIMEOUT_S = 600.0


def image_data_url(image: Any) -> str:
    """A PIL image as a lossless PNG data URL (the server decodes the same pixels the data set holds)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def question_messages(row: dict, prompt_suffix: str) -> list[dict]:
    """One user turn like the training prompt's: the image first, then the question and the suffix."""
    from synergy_ray.model.prompting import question_text  # defers torch

    content: list[dict] = []
    if row.get("image") is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(row["image"])}})
    content.append({"type": "text", "text": question_text(row["question"], prompt_suffix)})
    return [{"role": "user", "content": content}]


def make_client(endpoint: str, api_key_env: str | None):
    """An `openai.OpenAI` client for `endpoint` (the base URL ending in /v1), with the key from the config's
    environment variable when it names one."""
    from openai import OpenAI

    key = os.environ.get(api_key_env, "") if api_key_env else ""
    return OpenAI(base_url=endpoint, api_key=key or "no-key", timeout=REQUEST_TIMEOUT_S)


def resolve_model(client: Any, model: str | None) -> str:
    """The model to evaluate: the one asked for, or the server's only model."""
    served = [m.id for m in client.models.list()]
    if model is None:
        if len(served) != 1:
            raise ValueError(f"--model: the endpoint serves {len(served)} models ({', '.join(served)}); name one")
        return served[0]
    if model not in served:
        raise ValueError(f"--model: {model!r} is not served at the endpoint; served: {', '.join(served)}")
    return model


def _sample_one(client: Any, model: str, messages: list[dict], k: int, cfg: SynergyConfig) -> list[Completion]:
    ev = cfg.eval
    response = client.chat.completions.create(
        model=model, messages=messages, n=k, temperature=ev.temperature, top_p=ev.top_p, max_tokens=ev.max_tokens,
        extra_body={"top_k": ev.top_k},
    )
    choices = sorted(response.choices, key=lambda c: c.index)
    if len(choices) != k:
        raise RuntimeError(f"the endpoint returned {len(choices)} completions where n={k} were asked for")
    mean_tokens = response.usage.completion_tokens / k
    return [Completion(c.message.content or "", mean_tokens, c.finish_reason) for c in choices]


def sample_completions_via_endpoint(
    client: Any, model: str, rows: Sequence[dict], cfg: SynergyConfig, k: int, concurrency: int,
) -> list[list[Completion]]:
    """k completions per row, in row order, with at most `concurrency` requests in flight."""
    requests = [question_messages(row, cfg.data.prompt_suffix) for row in rows]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda messages: _sample_one(client, model, messages, k, cfg), requests))


def evaluate_endpoint(
    endpoint: str, data_path: str | os.PathLike, cfg: SynergyConfig, model: str | None = None,
    name: str | None = None, k: int | None = None, concurrency: int | None = None,
    out_json: str | os.PathLike | None = None,
):
    """Sample through `endpoint`, then score and summarise exactly as offline evaluation does."""

    start = time.perf_counter()
    k = k or cfg.eval.k
    client = make_client(endpoint, cfg.serve.api_key_env)
    model = resolve_model(client, model)
    rows = list(load_dataset(data_path))
    t0 = time.perf_counter()
    samples = sample_completions_via_endpoint(client, model, rows, cfg, k, concurrency or cfg.eval.concurrency)
    generate_s = time.perf_counter() - t0
    name = name or served_report_name(model)
    return build_report(rows, samples, cfg, name, f"{endpoint.rstrip('/')}#{model}", k, start, generate_s, out_json)


def served_report_name(model: str) -> str:
    """`<model>-served`: never the offline report's name, which a run's stages reuse when it exists."""
    return model.replace("/", "_") + "-served"
