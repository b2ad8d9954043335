"""A character-level tokenizer for the tiny embedded VLM, built locally with the `tokenizers` library.

Character-level keeps the vocabulary tiny (printable ASCII plus the Idefics3 special tokens) so the model's
embedding table stays small and any text the synthetic data or a user types can be encoded without training
a tokenizer. Real models bring their own tokenizer; nothing else in synergy-ray depends on this one.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<end_of_utterance>", "<unk>"
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)
]

# The whole conversation format: "User:<image>question<end_of_utterance>\nAssistant:answer<end_of_utterance>\n"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Printable ASCII, one token per character, special tokens whole."""
    specials = [PAD, BOS, EOS, UNK, *IMAGE_TOKENS]
    chars = sorted(set(string.printable) - set("\x0b\x0c\r"))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    # BPE without merges is a character-level model that still knows whole special tokens.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.add_special_tokens(specials)
    tok.decoder = decoders.Fuse()  # join characters without inserting spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=IMAGE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
