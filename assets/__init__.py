"""Bundled presets, stylesheets and icons; data only."""
