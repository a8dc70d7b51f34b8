"""Jinja2 templates (init, reports)."""
