"""Human-readable renderings of what the server produces, for the command line."""
