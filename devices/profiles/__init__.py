"""The built-in device profiles, one TOML file each."""
