"""Descent Lab."""
