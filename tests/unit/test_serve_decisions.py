"""The Serve app's decisions without Ray: which images may be read, which requests and keys pass, what is served
and with which deployment options. Each refusal must carry a 4xx status and a message naming the problem."""

import base64
import io
import os

import pytest
from PIL import Image

from synergy_ray.config import ConfigError, ServeConfig, load_config
from synergy_ray.serving.errors import RequestError
from synergy_ray.serving.images import ImagePolicy, load_image
from synergy_ray.serving.plan import check_fits, experimental_configs, find_models, server_options
from synergy_ray.serving.protocol import check_bearer, key_digest, required_key_digest


def _png(color=(255, 0, 0), size=8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


@pytest.fixture
def image_dirs(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "red.png").write_bytes(_png())
    (outside / "secret.png").write_bytes(_png((0, 0, 255)))
    (allowed / "fake.png").write_bytes(b"this is text, not a picture")
    return allowed, outside, ImagePolicy.create([str(allowed)], max_bytes=4096)


def _refusal(fn, *args) -> RequestError:
    with pytest.raises(RequestError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- images


def test_data_url_and_allowed_paths_decode_to_the_same_pixels(image_dirs):
    allowed, _, policy = image_dirs
    red = bytes([255, 0, 0] * 64)
    for url in (_data_url(_png()), str(allowed / "red.png"), f"file://{allowed}/red.png",
                f"{allowed}/sub/../red.png"):  # a `..` that stays inside is fine
        image = load_image(url, policy)
        assert image.mode == "RGB" and image.size == (8, 8) and image.tobytes() == red


def test_paths_outside_the_allowed_dirs_are_refused_before_reading(image_dirs, tmp_path):
    allowed, outside, policy = image_dirs
    (allowed / "link.png").symlink_to(outside / "secret.png")
    for url in (str(outside / "secret.png"), f"{allowed}/../outside/secret.png",
                f"file://{allowed}/../outside/secret.png", str(allowed / "link.png"), "/etc/passwd",
                str(outside / "missing.png")):  # refused before its existence is looked at
        err = _refusal(load_image, url, policy)
        assert err.status == 403 and "outside the directories" in err.message, url


def test_a_sibling_dir_sharing_the_prefix_is_outside(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs_private").mkdir()
    (tmp_path / "imgs_private" / "a.png").write_bytes(_png())
    policy = ImagePolicy.create([str(tmp_path / "imgs")], 4096)
    assert _refusal(load_image, str(tmp_path / "imgs_private" / "a.png"), policy).status == 403


def test_no_allowed_dirs_means_data_urls_only(image_dirs):
    allowed, _, _ = image_dirs
    policy = ImagePolicy.create([], 4096)
    err = _refusal(load_image, str(allowed / "red.png"), policy)
    assert err.status == 403 and "allowed_image_dirs is empty" in err.message
    assert load_image(_data_url(_png()), policy).size == (8, 8)


@pytest.mark.parametrize("url, status, words", [
    ("https://example.com/cat.png", 400, "https URLs are not fetched"),
    ("relative/red.png", 400, "must be absolute"),
    ("file://otherhost/tmp/x.png", 400, "not host 'otherhost'"),
    ("data:text/plain;base64,aGk=", 400, "data:image/<type>;base64"),
    ("data:image/png;base64,@@@notbase64", 400, "not valid base64"),
    (_data_url(b"plain text bytes"), 400, "not a readable image"),
    (_data_url(_png()[:40]), 400, "not a readable image"),  # a truncated PNG
    (_data_url(os.urandom(5000)), 413, "larger than the server's limit of 4096 bytes"),
])
def test_bad_image_urls(image_dirs, url, status, words):
    err = _refusal(load_image, url, image_dirs[2])
    assert err.status == status and words in err.message


def test_files_that_are_not_images_too_big_or_missing(image_dirs):
    allowed, _, policy = image_dirs
    (allowed / "big.png").write_bytes(_png(size=8) + os.urandom(5000))
    cases = {"fake.png": (400, "not a readable image"), "big.png": (413, "larger than"),
             "missing.png": (400, "no such image file")}
    for name, (status, words) in cases.items():
        err = _refusal(load_image, str(allowed / name), policy)
        assert err.status == status and words in err.message, name


# ---------------------------------------------------------------- requests (our checks over ray.serve.llm)


def _ingress(policy, seeds_supported=False):
    from synergy_ray.serving.app import Ingress

    return Ingress({"tiny": None, "base": None}, {"tiny": None, "base": None}, policy=policy,
                   seeds_supported=seeds_supported)


def _chat(**fields):
    from ray.serve.llm.openai_api_models import ChatCompletionRequest

    return ChatCompletionRequest.model_validate({"model": "base", "messages": [{"role": "user", "content": "hi"}],
                                                 **fields})


@pytest.mark.parametrize("fields, status, words", [
    ({"model": "nope"}, 404, "model: 'nope' is not served here; served: tiny, base"),
    ({"model": None}, 400, "model: required; served: tiny, base"),
    ({"n": 0}, 400, "n: must be between 1 and 64"),
    ({"n": 65}, 400, "n: must be between 1 and 64"),
    ({"seed": 1}, 400, "seeds are not supported on vLLM-CPU"),
])
def test_requests_the_layer_refuses(image_dirs, fields, status, words):
    err = _refusal(_ingress(image_dirs[2])._check, _chat(**fields))
    assert err.status == status and words in err.message
    _ingress(image_dirs[2], seeds_supported=True)._check(_chat(seed=1, n=64))  # fine where seeds work


def _image_message(*urls, extra=()):
    return [{"role": "user", "content": [*({"type": "image_url", "image_url": {"url": u}} for u in urls),
                                         *extra, {"type": "text", "text": "What is red?"}]}]


def test_images_are_read_under_our_policy_and_handed_on_as_their_pixels(image_dirs):
    import asyncio

    allowed, outside, policy = image_dirs
    ingress = _ingress(policy)
    messages = _image_message(str(allowed / "red.png"))
    asyncio.run(ingress._images(messages))
    url = messages[0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")  # vLLM opens no path and fetches no host itself
    assert load_image(url, policy).tobytes() == Image.open(allowed / "red.png").convert("RGB").tobytes()
    for urls, extra, status, words in [
        ((str(outside / "secret.png"),), (), 403, "outside the directories"),
        (("https://example.com/a.png",), (), 400, ""),
        ((_data_url(_png()),) * 2, (), 400, "at most 1"),
        ((), ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},), 400, "'input_audio'"),
    ]:
        err = _refusal(lambda m: asyncio.run(ingress._images(m)), _image_message(*urls, extra=extra))
        assert err.status == status and words in err.message, (urls, err.status, err.message)


# ---------------------------------------------------------------- the API key


def test_bearer_key_checks():
    digest = key_digest("s3cret")
    check_bearer("Bearer s3cret", digest)
    check_bearer(None, None)  # no key asked
    for header, words in ((None, "missing API key"), ("Basic s3cret", "missing API key"), ("Bearer ", "missing"),
                          ("Bearer wrong", "invalid API key")):
        err = _refusal(check_bearer, header, digest)
        assert err.status == 401 and words in err.message and "s3cret" not in err.message


def test_a_named_but_unset_key_variable_stops_start_up():
    assert required_key_digest(None, {}) is None
    assert required_key_digest("KEY", {"KEY": "abc"}) == key_digest("abc")
    with pytest.raises(ValueError, match="serve.api_key_env: the environment variable KEY is not set"):
        required_key_digest("KEY", {"KEY": " "})


# ---------------------------------------------------------------- what to serve, and how


def _checkpoint(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_checkpoints_and_run_dirs(tmp_path):
    a = _checkpoint(tmp_path / "ckpt_a")
    run = tmp_path / "run"
    _checkpoint(run / "base")
    _checkpoint(run / "rl")
    (run / "eval").mkdir()  # no weights: not a model
    (run / "sft").mkdir()
    (run / "sft" / "config.json").write_text("{}")  # config without weights: not a model
    assert find_models([str(a), str(run)]) == {"ckpt_a": str(a), "base": str(run / "base"), "rl": str(run / "rl")}
    assert find_models([str(a), str(run)], ["mine", "demo"]) == {
        "mine": str(a), "demo/base": str(run / "base"), "demo/rl": str(run / "rl")}


@pytest.mark.parametrize("make, names, words", [
    (lambda t: [str(t / "nope")], None, "no such directory"),
    (lambda t: [str(t)], None, "neither a checkpoint"),
    (lambda t: [str(_checkpoint(t / "x" / "m")), str(_checkpoint(t / "y" / "m"))], None,
     "model name 'm' is used by both"),
    (lambda t: [str(_checkpoint(t / "m"))], ["a", "b"], "got 2 names for 1 directories"),
])
def test_what_cannot_be_served(tmp_path, make, names, words):
    with pytest.raises(ValueError, match=words):
        find_models(make(tmp_path), names)


def test_fixed_replicas_or_autoscaling():
    fixed, placement = server_options(ServeConfig(num_replicas=2, min_replicas=2, max_replicas=2,
                                                  cpus_per_replica=0.5))
    assert fixed == {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": 16, "num_replicas": 2}
    assert placement == {"bundles": [{"CPU": 0.5}]}  # a replica costs cpus_per_replica, its actor nothing more
    scaled, placement = server_options(ServeConfig(num_replicas=2, min_replicas=1, max_replicas=4,
                                                   target_ongoing_requests=3, gpus_per_replica=1))
    assert "num_replicas" not in scaled and scaled["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4, "initial_replicas": 2, "target_ongoing_requests": 3}
    assert placement == {"bundles": [{"CPU": 1.0, "GPU": 1}]}


def test_the_stream_batching_interval_reaches_the_llm_config():
    from synergy_ray.serving.app import llm_config

    assert experimental_configs(ServeConfig()) == {}  # ray.serve.llm keeps its own default
    cfg = load_config(None, ["serve.stream_batching_interval_ms=120"])
    assert llm_config(cfg, "m", "/ckpt").experimental_configs == {"stream_batching_interval_ms": 120.0}
    assert llm_config(load_config(None, []), "m", "/ckpt").experimental_configs == {}
    with pytest.raises(ConfigError, match="serve.stream_batching_interval_ms"):
        load_config(None, ["serve.stream_batching_interval_ms=-1"])


def test_replica_bounds_are_validated():
    with pytest.raises(ConfigError, match="serve.num_replicas: need min_replicas <= num_replicas <= max_replicas"):
        load_config(None, ["serve.num_replicas=3"])


def test_a_plan_that_cannot_be_placed_is_refused():
    serve = ServeConfig(cpus_per_replica=0.5)
    check_fits(4, serve, cluster_cpus=2, cluster_gpus=0)
    with pytest.raises(ValueError, match=r"5 models x 1 replicas x 0.5 CPUs = 2.5 CPUs, but the cluster has 2"):
        check_fits(5, serve, cluster_cpus=2, cluster_gpus=0)
    with pytest.raises(ValueError, match="serve.gpus_per_replica"):
        check_fits(1, ServeConfig(gpus_per_replica=1), cluster_cpus=8, cluster_gpus=0)


# ---------------------------------------------------------------- the client side of eval --endpoint


def test_an_endpoint_question_carries_the_offline_prompt_and_pixels():
    """What `eval --endpoint` sends, rendered by the model's template the way vLLM's chat path renders OpenAI
    content parts, is the training prompt; its image reaches the engine as the same pixels."""
    import asyncio

    from synergy_ray.config import PAPER_PROMPT_SUFFIX, TinyVLMConfig
    from synergy_ray.evaluation.endpoint_eval import question_messages
    from synergy_ray.model.prompting import chat_text, prompt_text
    from synergy_ray.model.tiny_vlm import build_processor

    processor = build_processor(TinyVLMConfig())
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    row = {"question": "What is the green digit?", "image": image}
    messages = question_messages(row, PAPER_PROMPT_SUFFIX)
    rendered = [{**m, "content": [{"type": "image"} if p["type"] == "image_url" else p for p in m["content"]]}
                for m in messages]
    assert chat_text(processor, rendered) == prompt_text(processor, row["question"], PAPER_PROMPT_SUFFIX)
    asyncio.run(_ingress(ImagePolicy.create([], 4096))._images(messages))
    url = messages[0]["content"][0]["image_url"]["url"]
    assert load_image(url, ImagePolicy.create([], 4096)).tobytes() == image.tobytes()


def test_the_served_report_never_takes_the_offline_name():
    from synergy_ray.evaluation.endpoint_eval import served_report_name

    assert served_report_name("base") == "base-served" and served_report_name("demo/rl") == "demo_rl-served"


def test_cli_refuses_what_it_cannot_serve_before_starting_ray(tmp_path, capsys):
    from synergy_ray.cli import main

    assert main(["serve", str(tmp_path / "missing"), "--config", "configs/smoke_cpu.yaml"]) == 2
    assert "missing: no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["eval", "configs/smoke_cpu.yaml"])
    assert info.value.code == 2 and "--model DIR is required (or --endpoint URL" in capsys.readouterr().err


def test_pixels_are_capped_before_decoding(image_dirs):
    allowed, _, _ = image_dirs
    big = _png(size=3000)  # a few kB of PNG, 27 MB once decoded
    policy = ImagePolicy.create([str(allowed)], max_bytes=len(big) + 1, max_pixels=2000 * 2000)
    with pytest.raises(RequestError) as err:
        load_image(_data_url(big), policy)
    assert err.value.status == 413 and "3000x3000 pixels" in str(err.value)
    assert load_image(_data_url(_png(size=1000)), policy).size == (1000, 1000)


def test_only_regular_files_are_opened(image_dirs):
    import threading

    allowed, _, policy = image_dirs
    os.mkfifo(allowed / "pipe.png")
    result = {}
    reader = threading.Thread(target=lambda: result.update(err=_image_refusal(str(allowed / "pipe.png"), policy)))
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"  # it used to block a gateway thread forever
    assert result["err"].status == 400 and "not a regular file" in str(result["err"])


def _image_refusal(url, policy) -> RequestError:
    try:
        load_image(url, policy)
    except RequestError as err:
        return err
    raise AssertionError("accepted")


def _through_guard(chunks, declared=None, authorization=None, limit=4, digest=None):
    """What the Guard middleware answers, and the body the app behind it received (None: it was not called)."""
    import asyncio
    import json

    from synergy_ray.serving.app import Guard

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    headers = [(b"content-length", str(declared).encode())] if declared is not None else []
    headers += [(b"authorization", authorization.encode())] if authorization else []
    seen, sent = {}, []

    async def app(scope, receive, send):
        seen["body"] = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    asyncio.run(Guard(app, digest, limit)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), seen.get("body")


def test_request_bodies_are_capped_declared_or_streamed_and_the_key_checked_first():
    assert _through_guard([b"ab", b"cd"]) == (200, {}, b"abcd")  # read once, handed on whole
    for status, body, passed in (_through_guard([b"x"], declared=5), _through_guard([b"abc", b"de"])):
        assert status == 413 and "larger than" in body["error"]["message"] and passed is None
    digest = key_digest("s3cret")
    assert _through_guard([b"ab"], authorization="Bearer s3cret", digest=digest)[0] == 200
    status, body, passed = _through_guard([b"ab"], authorization="Bearer nope", digest=digest)
    assert (status, body["error"]["message"], passed) == (401, "invalid API key", None)


@pytest.mark.parametrize("port", ["0", "-1", "99999", "http"])
def test_serve_port_is_validated_by_the_parser(port, capsys):
    from synergy_ray.cli import build_parser, parse

    with pytest.raises(SystemExit) as exc:
        parse(build_parser(), ["serve", "runs/demo", "--port", port])
    assert exc.value.code == 2 and "1 to 65535" in capsys.readouterr().err
