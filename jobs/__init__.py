"""Datasets, queueing, result records and batch bookkeeping in Redis."""
