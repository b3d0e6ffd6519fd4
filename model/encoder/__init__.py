"""Text encoder."""
