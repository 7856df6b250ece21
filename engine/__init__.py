"""The headless core: experiment specs, the Runner, plugins' registry, sessions, the CLI's work."""
