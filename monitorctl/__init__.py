"""monitorctl: a PostgreSQL-native financial-integrity monitor."""

__version__ = "0.2.0.dev0"
