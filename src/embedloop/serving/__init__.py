"""Answering searches with the active model version; HTTP and MCP front ends."""
