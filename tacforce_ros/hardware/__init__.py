"""Real-robot data collection: robot interface, indentation protocol, force safety, run logic."""
