"""interlock.catalog."""
