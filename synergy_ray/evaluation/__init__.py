"""The evaluator role and what it writes: offline evaluation by difficulty level with vLLM, the same through a
served endpoint with the openai client, and the report (tables and plots) over finished runs."""
