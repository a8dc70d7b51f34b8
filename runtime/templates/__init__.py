"""Templates served by the runtime."""
