"""The serve app role: `app` holds the Ray Serve deployments (gateway and one vLLM engine per model); the other
modules are its pure checks (request schema, images and allowed directories, what fits where)."""
