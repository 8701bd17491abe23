"""Grasp map: GraspNet (seed 001), a camera frame -> P(grasp success) per 32 px cell and angle bin."""
