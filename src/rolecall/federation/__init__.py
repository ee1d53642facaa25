"""Identity federation: RFC 7523 JWT bearer assertions exchanged for rolecall access tokens."""
