"""What our layer over `ray.serve.llm` decides about a request itself: the API key and the limit on `n`.

The request schema, the responses and streaming are `ray.serve.llm`'s (vLLM's OpenAI protocol); see
`serving.app` for the checks run on each parsed request.
"""

from __future__ import annotations

import hashlib
import hmac

from synergy_ray.serving.errors import RequestError

MAX_N = 64  # completions per request; eval uses k=16, more is a mistake or an attack on memory


# ---------------------------------------------------------------- the API key


def key_digest(key: str) -> bytes:
    """What the server keeps instead of the key itself, so the key never travels into Serve's replicas."""
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
