"""Tradewatch ml package."""
