"""Client-facing API surfaces: decode into the canonical request, encode answers back."""
