"""The console: server-rendered pages (Jinja2), calling the same services as the REST API."""
