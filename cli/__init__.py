"""The `edgemed` command line: thin click commands over the library."""
