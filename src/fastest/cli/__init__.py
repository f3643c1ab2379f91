"""The `fastest` command: run and administer the local server, and the client that syncs folders to a server."""
