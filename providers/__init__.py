"""Rerank provider adapters behind one shared request path."""
