"""The data plane: an asyncio HTTP/1.1 proxy around an I/O-free codec and the compiled snapshot."""
