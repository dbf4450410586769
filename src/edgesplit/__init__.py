"""edgesplit."""
