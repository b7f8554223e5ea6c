"""Local stand-ins for providers' rerank APIs, one module per provider, speaking each real wire format."""
