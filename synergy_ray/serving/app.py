"""The Serve app: checkpoints behind an OpenAI-compatible API on Ray's own LLM serving (`ray.serve.llm`).

```
HTTP -> Guard   (ASGI middleware, ours: the bearer key, the request-size cap)
     -> Ingress (ray.serve.llm's OpenAiIngress plus our checks before each call: the model is served, images
                 by our policy, no per-request seeds on vLLM-CPU, the model's own chat template)
          -> LLMServer "base" (ray.serve.llm: one vLLM engine per replica)   x replicas / autoscaled
          -> LLMServer "rl"   ...
```
What `ray.serve.llm` brings: `GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/completions`, streamed
(server-sent events) or not, logprobs, continuous batching, autoscaling. What this module adds is only the
layer above: every refusal is ours, answered as a 4xx in OpenAI's error layout (`serving.errors`).

Images: every image is read here, under `serve.allowed_image_dirs` and the size limits (`serving.images`), and
handed on as a PNG data URL, so vLLM never opens a path or a host itself and sees exactly the pixels offline
evaluation sees. Remote URLs are refused: the server fetches nothing.

Left out: the other `ray.serve.llm` routes (embeddings, transcriptions, score, tokenize), and LoRA
multiplexing (our checkpoints are merged).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS
from ray.llm._internal.serve.core.ingress.ingress import init as ingress_app
from ray.serve.llm import LLMConfig, LLMServer, build_llm_deployment
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress
from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

from synergy_ray.cluster.ray_session import connect
from synergy_ray.config import SynergyConfig
from synergy_ray.console import quiet, worker_env
from synergy_ray.evaluation.endpoint_eval import image_data_url
from synergy_ray.model.engine import IMAGES_PER_PROMPT, engine_kwargs
from synergy_ray.serving.errors import RequestError
from synergy_ray.serving.images import ImagePolicy, load_image
from synergy_ray.serving.plan import check_fits, experimental_configs, find_models, server_options
from synergy_ray.serving.protocol import MAX_N, check_bearer, required_key_digest

APP_NAME = "synergy-ray"
ROUTES = ("models", "model_data", "chat", "completions")
# Request fields that would render a prompt unlike the one the model trained and is evaluated on.
TEMPLATE_FIELDS = {"chat_template": None, "chat_template_kwargs": None, "add_generation_prompt": True,
                   "continue_final_message": False, "echo": False, "mm_processor_kwargs": None,
                   "media_io_kwargs": None}


def _error(err: RequestError) -> JSONResponse:
    return JSONResponse(status_code=err.status, content=err.body())


class Guard:
    """ASGI middleware in front of every route: the bearer key (its digest only) and the body-size cap, both
    before the body is parsed. A body over the cap is refused (413) as soon as it passes it, declared or not."""

    def __init__(self, app, key_digest: bytes | None, max_request_bytes: int):
        self.app, self.key_digest, self.limit = app, key_digest, max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            check_bearer(headers.get("authorization"), self.key_digest)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limit:
                raise RequestError(413, f"the request body ({declared} bytes) is larger than the server's limit "
                                        f"of {self.limit} bytes")
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.limit:
                    raise RequestError(413, f"the request body is larger than the server's limit of {self.limit} "
                                            "bytes")
        except RequestError as err:
            return await _error(err)(scope, receive, send)
        return await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive):
    """A `receive` that gives the body already read, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class Ingress(OpenAiIngress):
    """`ray.serve.llm`'s OpenAI router with our checks run on each parsed request before it is routed."""

    def __init__(self, llm_deployments, model_cards, *, policy: ImagePolicy, seeds_supported: bool):
        super().__init__(llm_deployments, model_cards)
        self.policy, self.seeds_supported = policy, seeds_supported

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        try:
            self._check(body)
            for name, default in TEMPLATE_FIELDS.items():
                if getattr(body, name, default) != default:
                    raise RequestError(400, f"{name}: not accepted here; the server renders every chat with the "
                                            "model's own template, as training and offline evaluation do")
            await self._images(body.messages)
        except RequestError as err:
            return _error(err)
        return await super().chat(body, request)

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        try:
            self._check(body)
        except RequestError as err:
            return _error(err)
        return await super().completions(body, request)

    def _check(self, body) -> None:
        served = list(self._model_cards)
        if body.model not in served:
            what = "model: required" if body.model is None else f"model: {body.model!r} is not served here"
            raise RequestError(404 if body.model else 400, f"{what}; served: {', '.join(served)}")
        if body.n is not None and not 1 <= body.n <= MAX_N:
            raise RequestError(400, f"n: must be between 1 and {MAX_N}, got {body.n}")
        if body.seed is not None and not self.seeds_supported:
            # vLLM-CPU 0.32 kills its engine when a seeded request's prefill is chunked ("CPU Generator does
            # not use offset"), which any busy server does; a request must not be able to take it down.
            raise RequestError(400, "seed: per-request seeds are not supported on vLLM-CPU; omit seed")

    async def _images(self, messages: list) -> None:
        """Every image part read under our policy and replaced, in place, by a PNG data URL of its pixels."""
        parts = [p for m in messages if isinstance(m.get("content"), list) for p in m["content"]]
        for part in parts:
            if part.get("type") not in ("text", "image_url"):
                raise RequestError(400, f"messages: content parts of type {part.get('type')!r} are not accepted "
                                        "here; send text and image_url parts")
        images = [p for p in parts if p.get("type") == "image_url"]
        if len(images) > IMAGES_PER_PROMPT:
            raise RequestError(400, f"messages: {len(images)} images, but this server takes at most "
                                    f"{IMAGES_PER_PROMPT} per request")
        for part in images:
            url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
            # Reading, decoding and re-encoding off the router's event loop: a large image must not stall others.
            part["image_url"] = {"url": await asyncio.to_thread(lambda: image_data_url(load_image(str(url), self.policy)))}


class Server(LLMServer):
    """`LLMServer` that also stops its vLLM engine process when the replica ends (Ray 2.60's own shutdown
    closes only a socket, leaving the engine to garbage collection)."""

    async def __del__(self) -> None:
        client = getattr(getattr(self, "engine", None), "_engine_client", None)
        await super().__del__()
        if client is not None:
            client.shutdown()


def llm_config(cfg: SynergyConfig, name: str, path: str) -> LLMConfig:
    """One checkpoint's `LLMConfig`: the run's engine settings (`model.engine_kwargs`, as offline evaluation
    builds its engine) and the `serve` section's replicas and resources."""
    kwargs = engine_kwargs(path, cfg.rollout, cfg.model.dtype, cfg.run.seed, cfg.model.trust_remote_code)
    kwargs.pop("model")
    kwargs["disable_log_stats"] = True  # as `build_async_engine`: no periodic stats lines in the console
    deployment, placement = server_options(cfg.serve)
    return LLMConfig(
        model_loading_config={"model_id": name, "model_source": path},
        engine_kwargs=kwargs,
        **({} if cfg.serve.gpus_per_replica else {"accelerator_config": {"kind": "cpu"}}),
        placement_group_config=placement,
        deployment_config=deployment,
        experimental_configs=experimental_configs(cfg.serve),
        # Replaces the job's env_vars in the replica (ray.serve.llm merges runtime envs key by key), so our quiet
        # settings and log level travel here again.
        runtime_env={"env_vars": {**worker_env(), "VLLM_CPU_KVCACHE_SPACE": str(cfg.rollout.cpu_kvcache_space_gib)}},
        server_cls=Server,
        log_engine_metrics=False,
    )


def _deployment_name(index: int, model: str) -> str:
    return f"model{index}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", model)


def build_app(cfg: SynergyConfig, models: dict[str, str], environ: dict | None = None):
    """The Serve application for `models` (name -> checkpoint path) on the connected Ray; reads the API key
    from the environment (a named but unset variable stops here)."""
    digest = required_key_digest(cfg.serve.api_key_env, os.environ if environ is None else environ)
    configs = {name: llm_config(cfg, name, path) for name, path in models.items()}
    servers = {name: build_llm_deployment(c, override_serve_options={"name": _deployment_name(i, name)})
               for i, (name, c) in enumerate(configs.items())}
    app = ingress_app()
    app.add_middleware(Guard, key_digest=digest, max_request_bytes=cfg.serve.max_request_bytes)
    ingress = make_fastapi_ingress(Ingress, endpoint_map={r: DEFAULT_ENDPOINTS[r] for r in ROUTES}, app=app)
    policy = ImagePolicy.create(cfg.serve.allowed_image_dirs, cfg.serve.max_image_bytes, cfg.serve.max_image_pixels)
    # The router only waits on the engines: it takes no CPU of its own (on a 2-CPU machine one would be missing).
    return serve.deployment(ingress, name="Ingress", num_replicas=1, max_ongoing_requests=1024,
                            ray_actor_options={"num_cpus": 0}).bind(
        llm_deployments=servers, model_cards={n: to_model_metadata(n, c) for n, c in configs.items()},
        policy=policy, seeds_supported=cfg.serve.gpus_per_replica > 0)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as err:
            raise ValueError(f"serve.port: cannot listen on {host}:{port} ({err.strerror}); pick another with "
                             "--port") from None


def start(cfg: SynergyConfig, models: dict[str, str], port: int | None = None) -> str:
    """Deploy `models` on the connected Ray and wait until every replica is up; returns the API's base URL."""
    import ray

    host, port = cfg.serve.host, port if port is not None else cfg.serve.port
    resources = ray.cluster_resources()
    check_fits(len(models), cfg.serve, resources.get("CPU", 0.0), resources.get("GPU", 0.0))
    app = build_app(cfg, models)  # before anything starts: a missing API key stops here
    _check_port_free(host, port)
    # Serve's controller, proxy and replicas log every step and request at INFO; with --verbose they do again.
    logging = {"log_level": "WARNING", "enable_access_log": False} if quiet() else None
    serve.start(http_options={"host": host, "port": port}, logging_config=logging)
    serve.run(app, name=APP_NAME, route_prefix="/", logging_config=logging)
    return f"http://{host}:{port}/v1"


def run_serve(cfg: SynergyConfig, paths: list[str], names: list[str] | None, port: int | None) -> int:
    """`synergy-ray serve`: serve the models found under `paths` until Ctrl-C."""

    models = find_models(paths, names)
    connect(cfg)
    url = start(cfg, models, port)
    for name, path in models.items():
        print(f"model {name:<24} {path}")
    key = f", bearer key from ${cfg.serve.api_key_env}" if cfg.serve.api_key_env else ""
    print(f"OpenAI-compatible API at {url} (GET /models, POST /chat/completions and /completions, streaming or "
          f"not{key}); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C, or `kill` (SIGTERM raises it too: see `leftovers.stop_on_sigterm`)
        print("shutting down")
    finally:
        serve.shutdown()
    return 0
