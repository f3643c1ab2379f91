"""The `fastest` command: run the local server and administer it (client commands come later)."""
