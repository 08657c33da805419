"""Many people at once against the real server."""
