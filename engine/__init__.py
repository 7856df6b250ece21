"""The headless core: experiment specs, the Runner, plugins' registry, sessions and the CLI."""
