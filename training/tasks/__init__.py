"""One sub-package per model task (config, data, model, train, export, evaluate, commands).

TASKS lists them in the order `tacforce train --help` shows them; the CLI is built from it.
"""
TASKS = ("tactile_force", "grasp_success", "grasp_map", "visual_force", "m2m", "transfer")
