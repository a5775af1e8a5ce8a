"""The HTTP filters of the proxy's chain, one module each (remora.proxy.filter: the protocol;
remora.proxy.chain: which filters a listener runs, and in what order)."""
