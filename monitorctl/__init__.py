"""monitorctl: a PostgreSQL-native financial-integrity monitor."""

__version__ = "0.1.0"
