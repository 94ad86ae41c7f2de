"""Tradewatch expectations package."""
