"""Ingest: capture files (read/write) and their replay through the venue parsers."""
