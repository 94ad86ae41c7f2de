"""Tradewatch flows package."""
