"""Server-rendered pages: the coordinator's public pages and the party console."""
