"""interlock.runtime."""
