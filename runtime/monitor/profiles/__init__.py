"""Built-in alarm profiles of the monitor (TOML)."""
