"""interlock.schemas."""
