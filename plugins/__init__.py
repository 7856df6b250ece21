"""Built-in optimizer, diagnostic and task plugins, registered through entry points."""
