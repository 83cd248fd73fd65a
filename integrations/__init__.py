"""Adapters that implement the ports of ``domain`` against real services."""
