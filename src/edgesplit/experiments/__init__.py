"""Paper reproductions, one module per paper; each registers on `edgesplit reproduce`."""
