"""The registry suite runs on SQLite, PostgreSQL and through a server (`RestBackend`)."""

from tests._served import store_url_or_server  # noqa: F401 - `store_url`, with "server"
