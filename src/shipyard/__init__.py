"""Shipyard: a self-hosted platform-as-a-service for Python web apps."""

__version__ = "0.1.0"
