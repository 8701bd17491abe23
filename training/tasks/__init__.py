"""One sub-package per model task (config, data, model, train, export, evaluate, commands)."""
