"""The serve app role: `app` builds the app on `ray.serve.llm` (its OpenAI router with our checks in front, one
`LLMServer` per model); the other modules are its pure checks (the API key, images and allowed directories, what
fits where)."""
