"""The Serve app's pure decisions: request schema, image and key checks, deployment options, which models to serve.

Nothing here imports Ray, vLLM or FastAPI, so every refusal the server makes is unit-tested without starting
anything; `synergy_ray.serve` wires these into Ray Serve deployments.
"""
