"""VirtualService analyzers: destinations, delegates, gateways, mesh hosts, rules, JWT claims."""
