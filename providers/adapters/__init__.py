"""One module per rerank provider: data plus two pure hooks (build the request, parse the response)."""
