"""Adapters that make sharedctx the store of other frameworks (each an extra)."""
