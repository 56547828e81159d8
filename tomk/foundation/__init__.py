"""Pretrained language models in and out of tomk: checkpoint (read), convert (import, export)."""
