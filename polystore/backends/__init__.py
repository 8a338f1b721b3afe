"""Embedded backends shipped with polystore, registered through the plugin hook."""
