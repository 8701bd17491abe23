"""Grasp success: one after-grasp camera frame -> P(held), a binary classifier (seeds 002 and 004)."""
