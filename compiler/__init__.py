"""interlock.compiler."""
