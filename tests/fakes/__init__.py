"""Loopback fakes of outside services, speaking their real HTTP formats."""
