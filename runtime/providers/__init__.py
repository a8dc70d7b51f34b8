"""interlock.runtime.providers."""
