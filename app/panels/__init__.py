"""Panels of the main window: experiment editor, run table, event log."""
