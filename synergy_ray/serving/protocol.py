"""The OpenAI chat-completions subset the server speaks: request schema, its translation for the model, responses.

Supported: text and `image_url` content parts, `n`, `temperature`, `top_p`, `max_tokens` (or
`max_completion_tokens`), `stop`, `seed`, and vLLM's extra `top_k`. Left out: streaming (refused with a message),
tools, logprobs and other fields, which are ignored the way many OpenAI-compatible servers ignore them.
"""

from __future__ import annotations

import hmac
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synergy_ray.serving.errors import RequestError

MAX_N = 64  # completions per request; eval uses k=16, more is a mistake or an attack on memory


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Part):
    type: Literal["text"]
    text: str


class ImageURL(_Part):
    url: str = Field(min_length=1)


class ImagePart(_Part):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class ChatMessage(_Part):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class ChatCompletionRequest(_Part):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(-1, ge=-1)  # vLLM's extra parameter; -1 and 0 turn it off
    max_tokens: int | None = Field(None, ge=1)  # None: up to the model's context length
    max_completion_tokens: int | None = Field(None, ge=1)  # OpenAI's newer name for max_tokens; wins when set
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False


def _field_errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def parse_request(body: bytes) -> ChatCompletionRequest:
    """Validate a request body; malformed JSON or a bad field is a 400 whose message names every problem."""
    try:
        request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as err:
        raise RequestError(400, f"invalid request: {_field_errors(err)}") from None
    if request.stream:
        raise RequestError(400, "stream: streaming responses are not supported; send stream=false")
    return request


def template_messages(request: ChatCompletionRequest) -> tuple[list[dict], list[str]]:
    """The messages in Hugging Face chat-template form (images as `{"type": "image"}` in place) and the image
    URLs in order, for `prompting.chat_text` and the image loader."""
    messages, urls = [], []
    for m in request.messages:
        if isinstance(m.content, str):
            messages.append({"role": m.role, "content": m.content})
            continue
        content = []
        for part in m.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                content.append({"type": "image"})
                urls.append(part.image_url.url)
        messages.append({"role": m.role, "content": content})
    return messages, urls


def sampling_kwargs(request: ChatCompletionRequest) -> dict:
    """Keyword arguments for `vllm.SamplingParams`."""
    return dict(n=request.n, temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
                max_tokens=request.max_completion_tokens or request.max_tokens, stop=request.stop,
                seed=request.seed)


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str | None
    num_tokens: int


def chat_response(model: str, choices: list[Choice], prompt_tokens: int) -> dict:
    """An OpenAI `chat.completion` object."""
    completion_tokens = sum(c.num_tokens for c in choices)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                     "finish_reason": c.finish_reason, "logprobs": None} for i, c in enumerate(choices)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def models_response(names: list[str], created: int) -> dict:
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "synergy-ray"} for n in names]}


# ---------------------------------------------------------------- the API key


def key_digest(key: str) -> bytes:
    """What the gateway keeps instead of the key itself, so the key never travels into Serve's replicas."""
    return hashlib.sha256(key.encode()).digest()


def check_bearer(authorization: str | None, digest: bytes | None) -> None:
    """Pass when no key is required or the `Authorization: Bearer <key>` header carries the right one."""
    if digest is None:
        return
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise RequestError(401, "missing API key: send the header 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(key_digest(key.strip()), digest):
        raise RequestError(401, "invalid API key")


def required_key_digest(env_name: str | None, environ: dict) -> bytes | None:
    """The digest of the key in the environment variable `serve.api_key_env` names, None when no key is asked.

    A named but unset variable is a start-up error: serving without the key the config asks for would be open.
    """
    if env_name is None:
        return None
    key = environ.get(env_name, "").strip()
    if not key:
        raise ValueError(f"serve.api_key_env: the environment variable {env_name} is not set (or empty); set it "
                         "to the API key clients must send, or drop serve.api_key_env to serve without a key")
    return key_digest(key)
