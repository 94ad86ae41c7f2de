"""Tradewatch ingest package."""
