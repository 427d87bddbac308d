"""Reproductions of the papers' experiments; each only wires library functions together."""
