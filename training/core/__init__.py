"""Shared training core: one loop, one checkpoint schema, DDP, curves, on-disk frame cache, task registry."""
