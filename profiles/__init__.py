"""interlock.profiles."""
