"""The shared floor beneath the libraries: what ingest, ml, expectations and flows all need.

It imports none of them. The libraries may import it; they know nothing of each other.
"""
