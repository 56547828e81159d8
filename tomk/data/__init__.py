"""Data: conversations, tokenizer, tfds builders and grain input pipelines."""
