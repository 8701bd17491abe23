"""Tactile force: GenForce-style TemporalForce, tactile marker images -> contact force (N)."""
