"""Model building and loading: the tiny embedded VLM and the ordinary Hugging Face loading path."""
